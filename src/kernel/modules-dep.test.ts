import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AppError } from '../errors.js';
import { loadOrder, moduleName, parseModulesBuiltin, parseModulesDep } from './modules-dep.js';

// Lines taken verbatim from depmod output for Debian's 6.1.0-56-cloud-amd64 kernel.
const fixture = (name: string): string =>
  readFileSync(new URL(`../../../test/fixtures/modules/${name}`, import.meta.url), 'utf8');
const realDep = parseModulesDep(fixture('modules.dep'));
const realBuiltin = parseModulesBuiltin(fixture('modules.builtin'));

const nameCases: { path: string; want: string }[] = [
  { path: 'kernel/drivers/block/virtio_blk.ko', want: 'virtio_blk' },
  { path: 'kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko.xz', want: 'vmw_vsock_virtio_transport' },
  { path: 'kernel/drivers/char/hw_random/virtio-rng.ko.zst', want: 'virtio_rng' },
  { path: 'kernel/lib/crc-itu-t.ko.gz', want: 'crc_itu_t' },
  { path: 'virtio_net.ko', want: 'virtio_net' },
  { path: 'virtio-net', want: 'virtio_net' },
];
for (const c of nameCases) {
  test(`moduleName(${c.path})`, () => assert.equal(moduleName(c.path), c.want));
}

test('parseModulesDep keeps dependencies in file order and accepts compressed modules', () => {
  const dep = parseModulesDep(
    [
      'kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz',
      '',
      'kernel/net/core/failover.ko.zst:',
      'kernel/a.ko.gz:   kernel/b.ko.gz\tkernel/c.ko.gz  ',
    ].join('\n'),
  );
  assert.deepEqual(
    [...dep],
    [
      [
        'kernel/drivers/net/virtio_net.ko.xz',
        ['kernel/drivers/net/net_failover.ko.xz', 'kernel/net/core/failover.ko.xz'],
      ],
      ['kernel/net/core/failover.ko.zst', []],
      ['kernel/a.ko.gz', ['kernel/b.ko.gz', 'kernel/c.ko.gz']],
    ],
  );
});

test('parseModulesDep on real data', () => {
  assert.deepEqual(realDep.get('kernel/drivers/net/virtio_net.ko'), [
    'kernel/drivers/net/net_failover.ko',
    'kernel/net/core/failover.ko',
    'kernel/drivers/virtio/virtio.ko',
    'kernel/drivers/virtio/virtio_ring.ko',
  ]);
  assert.deepEqual(realDep.get('kernel/drivers/virtio/virtio_ring.ko'), []);
});

test('parseModulesDep rejects a line without a colon', () => {
  assert.throws(
    () => parseModulesDep('kernel/a.ko kernel/b.ko\n'),
    (e: unknown) => e instanceof AppError && e.code === 'bad_request',
  );
});

test('parseModulesBuiltin yields normalised names', () => {
  assert.ok(realBuiltin.has('ext4'));
  assert.ok(realBuiltin.has('jbd2'));
  assert.ok(realBuiltin.has('crc_t10dif'));
  assert.ok(!realBuiltin.has('virtio_blk'));
  assert.deepEqual(
    parseModulesBuiltin('kernel/fs/ext4/ext4.ko\n\nkernel/lib/crc-ccitt.ko\n'),
    new Set(['ext4', 'crc_ccitt']),
  );
});

const orderCases: { name: string; wanted: string[]; want: string[] }[] = [
  {
    name: 'guest boot set',
    wanted: ['virtio_mmio', 'virtio_blk', 'virtio_net', 'vmw_vsock_virtio_transport'],
    want: [
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/virtio/virtio.ko',
      'kernel/drivers/virtio/virtio_mmio.ko',
      'kernel/drivers/block/virtio_blk.ko',
      'kernel/net/core/failover.ko',
      'kernel/drivers/net/net_failover.ko',
      'kernel/drivers/net/virtio_net.ko',
      'kernel/net/vmw_vsock/vsock.ko',
      'kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko',
      'kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko',
    ],
  },
  {
    name: 'builtin modules are omitted',
    wanted: ['ext4', 'virtio_blk', 'jbd2'],
    want: [
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/virtio/virtio.ko',
      'kernel/drivers/block/virtio_blk.ko',
    ],
  },
  {
    name: 'dash and duplicate names',
    wanted: ['virtio-rng', 'virtio_rng', 'virtio'],
    want: [
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/virtio/virtio.ko',
      'kernel/drivers/char/hw_random/virtio-rng.ko',
    ],
  },
  {
    name: 'module wanted after it was pulled in as a dependency',
    wanted: ['vsock_loopback', 'vsock'],
    want: [
      'kernel/net/vmw_vsock/vsock.ko',
      'kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko',
      'kernel/net/vmw_vsock/vsock_loopback.ko',
    ],
  },
  {
    name: 'only builtins',
    wanted: ['ext4', 'unix'],
    want: [],
  },
];
for (const c of orderCases) {
  test(`loadOrder on real data: ${c.name}`, () => {
    assert.deepEqual(loadOrder(realDep, realBuiltin, c.wanted), c.want);
  });
}

test('loadOrder names a missing module', () => {
  assert.throws(
    () => loadOrder(realDep, realBuiltin, ['virtio_blk', 'nvme']),
    (e: unknown) =>
      e instanceof AppError && e.code === 'bad_request' && e.message.includes('"nvme"') && /lacks/.test(e.message),
  );
});

/** Every dependency (transitively listed in modules.dep) comes before its dependent. */
function assertTopological(dep: Map<string, string[]>, order: string[]): void {
  const index = new Map(order.map((p, i) => [p, i]));
  assert.equal(index.size, order.length, 'no duplicates');
  for (const [i, p] of order.entries()) {
    for (const d of dep.get(p) ?? []) {
      const j = index.get(d);
      assert.ok(j !== undefined && j < i, `${d} must precede ${p}`);
    }
  }
}

test('loadOrder respects dependencies on a synthetic table whose lines are not depth-sorted', () => {
  // d -> c -> b -> a; e -> {a, d}. Lines list deps in deliberately unhelpful order.
  const dep = parseModulesDep(
    [
      'm/e.ko: m/a.ko m/b.ko m/c.ko m/d.ko',
      'm/d.ko: m/a.ko m/c.ko m/b.ko',
      'm/c.ko: m/a.ko m/b.ko',
      'm/b.ko: m/a.ko',
      'm/a.ko:',
      'm/f.ko: m/b.ko m/a.ko',
    ].join('\n'),
  );
  const wantedSets = [['e'], ['f', 'e'], ['d', 'b'], ['a', 'b', 'c', 'd', 'e', 'f'], ['f', 'e', 'd', 'c', 'b', 'a']];
  for (const wanted of wantedSets) {
    const order = loadOrder(dep, new Set(), wanted);
    assertTopological(dep, order);
    for (const w of wanted) assert.ok(order.includes(`m/${w}.ko`));
    assert.deepEqual(loadOrder(dep, new Set(), wanted), order, 'deterministic');
  }
});

test('loadOrder on real data is topological for every module', () => {
  const all = [...realDep.keys()].map(moduleName);
  const order = loadOrder(realDep, realBuiltin, all);
  assertTopological(realDep, order);
  assert.equal(order.length, realDep.size);
});

test('loadOrder tolerates a dependency cycle', () => {
  const dep = parseModulesDep('m/a.ko: m/b.ko\nm/b.ko: m/a.ko\n');
  assert.deepEqual(loadOrder(dep, new Set(), ['a']), ['m/b.ko', 'm/a.ko']);
});
