import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { makeRootDisk, rootDiskPlans, strategyOrder, undoPlan } from './rootdisk.js';

const input = { base: '/i/rootfs.ext4', dir: '/v', sizeBytes: 8 * 2 ** 30, vmId: 'abcdef0123456789' };

test('strategy order: qcow2 only for a VMM that reads it, dm only when usable', () => {
  assert.deepEqual(strategyOrder({ vmmReadsQcow2: true, dmUsable: false }), [
    'qcow2-overlay',
    'reflink',
    'sparse-copy',
  ]);
  assert.deepEqual(strategyOrder({ vmmReadsQcow2: false, dmUsable: true }), ['reflink', 'dm-snapshot', 'sparse-copy']);
});

test('plans: argv per strategy', () => {
  assert.deepEqual(rootDiskPlans['qcow2-overlay'](input).steps[0]?.argv, [
    'qemu-img',
    'create',
    '-q',
    '-f',
    'qcow2',
    '-F',
    'raw',
    '-b',
    '/i/rootfs.ext4',
    '/v/root.qcow2',
    '8589934592',
  ]);
  assert.deepEqual(
    rootDiskPlans.reflink(input).steps.map((s) => s.argv[0]),
    ['cp', 'truncate'],
  );
  assert.equal(rootDiskPlans.reflink(input).steps[0]?.argv[1], '--reflink=always');
  assert.equal(rootDiskPlans['sparse-copy'](input).steps[0]?.argv[1], '--sparse=always');
  const dm = rootDiskPlans['dm-snapshot'](input);
  assert.equal(dm.path, '/dev/mapper/banger-abcdef012345');
  assert.deepEqual(
    dm.steps.map((s) => s.argv[0]),
    ['truncate', 'losetup', 'losetup', 'dmsetup'],
  );
  assert.match(dm.steps[3]?.argv.join(' ') ?? '', /snapshot \{base_loop\} \{cow_loop\} P 8/);
});

test('files: an overlay is root.qcow2; a raw copy is root.raw, never root.qcow2', () => {
  assert.equal(rootDiskPlans['qcow2-overlay'](input).path, '/v/root.qcow2');
  for (const s of ['reflink', 'sparse-copy'] as const) {
    const plan = rootDiskPlans[s](input);
    assert.equal(plan.path, '/v/root.raw', s);
    assert.equal(plan.format, 'raw', s);
    assert.ok(!plan.steps.some((st) => st.argv.some((a) => a.endsWith('.qcow2'))), s);
  }
});

test('device-mapper plan (fake runner: dm does not exist on these hosts): loop devices substituted, undo in reverse on failure', async () => {
  const runner = new FakeRunner()
    .on('truncate', {})
    .on((a) => a[0] === 'losetup' && a[1] === '-d', {})
    .on((a) => a[0] === 'rm' && a[1] === '-f', {})
    .on((a) => a[0] === 'losetup' && a.includes('--read-only'), { stdout: '/dev/loop7\n' })
    .on((a) => a[0] === 'losetup' && a[1] === '--find' && !a.includes('--read-only'), { stdout: '/dev/loop8\n' })
    .on('dmsetup', { code: 1, stderr: 'device-mapper: reload ioctl failed' })
    .on('cp', { code: 1, stderr: 'cp: failed to clone: Operation not supported' });
  await assert.rejects(makeRootDisk(runner, input, ['dm-snapshot']), /could not make the VM root disk/);
  const argvs = runner.calls.map((c) => c.argv.join(' '));
  assert.ok(argvs.includes(`dmsetup create banger-abcdef012345 --table 0 16777216 snapshot /dev/loop7 /dev/loop8 P 8`));
  const undo = argvs.slice(argvs.findIndex((a) => a.startsWith('dmsetup')) + 1);
  assert.deepEqual(undo, ['losetup -d /dev/loop8', 'losetup -d /dev/loop7', 'rm -f /v/root.cow']);
  runner.assertNoUnexpected();
});

test('fallthrough: reflink unsupported → sparse copy, recorded as the strategy', async () => {
  const runner = new FakeRunner()
    .on((a) => a[0] === 'cp' && a[1] === '--sparse=always', {})
    .on((a) => a[0] === 'truncate' && a[1] === '-s', {})
    .on((a) => a[0] === 'cp' && a[1] === '--reflink=always', {
      code: 1,
      stderr: 'cp: failed to clone: Operation not supported',
    });
  const { plan } = await makeRootDisk(runner, input, ['reflink', 'sparse-copy']);
  assert.equal(plan.strategy, 'sparse-copy');
  assert.deepEqual(
    runner.calls.map((c) => c.argv.join(' ')),
    [
      'cp --reflink=always /i/rootfs.ext4 /v/root.raw',
      'cp --sparse=always /i/rootfs.ext4 /v/root.raw',
      'truncate -s >8589934592 /v/root.raw',
    ],
  );
  const r2 = new FakeRunner().on((a) => a[0] === 'rm' && a[1] === '-f', {});
  await undoPlan(r2, plan, {});
  assert.deepEqual(
    r2.calls.map((c) => c.argv.join(' ')),
    ['rm -f /v/root.raw'],
  );
  runner.assertNoUnexpected();
  r2.assertNoUnexpected();
});
