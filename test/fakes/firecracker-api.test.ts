import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeFirecracker } from './firecracker-api.js';
import { MIN_FIRECRACKER_VERSION } from '../../src/vmm/firecracker/version.js';

const dir = mkdtempSync(join(tmpdir(), 'fc-fake-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const P = (name: string): string => join(dir, name);
writeFileSync(P('vmlinux'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]));
writeFileSync(P('bzImage'), Buffer.from('MZ\0\0not an elf'));
writeFileSync(P('initrd'), 'cpio');
writeFileSync(P('root.ext4'), '');
writeFileSync(P('work.ext4'), '');
writeFileSync(P('fc.log'), '');
writeFileSync(P('metrics'), '');

interface Raw {
  status: number;
  json: unknown;
}

/** One HTTP request with full control over body and headers (unlike the client under test elsewhere). */
function raw(
  sock: string,
  method: string,
  path: string,
  body?: string,
  opts: { chunked?: boolean } = {},
): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (body !== undefined && !opts.chunked) headers['Content-Length'] = Buffer.byteLength(body);
    if (opts.chunked) headers['Transfer-Encoding'] = 'chunked';
    const req = request({ socketPath: sock, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text === '' ? undefined : JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

let n = 0;
async function withFake<T>(fn: (sock: string, fake: FakeFirecracker) => Promise<T>): Promise<T> {
  const sock = P(`api-${n++}.sock`);
  const fake = await FakeFirecracker.start(sock, { id: 'dev', version: '1.7.0' });
  try {
    return await fn(sock, fake);
  } finally {
    await fake.close();
  }
}

type Step = [method: string, path: string, body?: unknown];
const J = (b: unknown): string => (typeof b === 'string' ? b : JSON.stringify(b));

const kernel = { kernel_image_path: P('vmlinux') };
const rootDrive = { drive_id: 'root', path_on_host: P('root.ext4'), is_root_device: true, is_read_only: false };
const workDrive = { drive_id: 'work', path_on_host: P('work.ext4'), is_root_device: false, is_read_only: false };
const boot: Step[] = [
  ['PUT', '/boot-source', kernel],
  ['PUT', '/actions', { action_type: 'InstanceStart' }],
];
const netA = { iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: '06:00:00:00:00:01' };

const BAD: { name: string; setup?: Step[]; req: Step; opts?: { chunked?: boolean }; fault: RegExp }[] = [
  // routing and HTTP framing
  { name: 'unknown path', req: ['PUT', '/nope', {}], fault: /^Invalid request method and\/or path: PUT nope\.$/ },
  { name: 'GET with a body', req: ['GET', '/', {}], fault: /^GET request cannot have a body\.$/ },
  { name: 'PUT without a body', req: ['PUT', '/machine-config'], fault: /^Empty PUT request\.$/ },
  {
    name: 'chunked body counts as none',
    req: ['PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128 }],
    opts: { chunked: true },
    fault: /^Empty PUT request\.$/,
  },
  { name: 'not JSON', req: ['PUT', '/boot-source', '{kernel'], fault: /deserializing the json body.*malformed JSON/ },
  { name: 'array body', req: ['PUT', '/boot-source', []], fault: /invalid type: sequence, expected a struct/ },
  // machine-config
  {
    name: 'machine-config missing mem',
    req: ['PUT', '/machine-config', { vcpu_count: 2 }],
    fault: /missing field `mem_size_mib`/,
  },
  {
    name: 'machine-config unknown field',
    req: ['PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 128, memory: 1 }],
    fault: /unknown field `memory`, expected one of `vcpu_count`/,
  },
  {
    name: 'machine-config vcpu as string',
    req: ['PUT', '/machine-config', { vcpu_count: '2', mem_size_mib: 128 }],
    fault: /invalid type: string "2", expected u8/,
  },
  {
    name: 'machine-config 0 vcpus',
    req: ['PUT', '/machine-config', { vcpu_count: 0, mem_size_mib: 128 }],
    fault: /vCPUs must be from 1 to 32/,
  },
  {
    name: 'machine-config 33 vcpus',
    req: ['PUT', '/machine-config', { vcpu_count: 33, mem_size_mib: 128 }],
    fault: /vCPUs must be from 1 to 32/,
  },
  {
    name: 'machine-config negative memory',
    req: ['PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: -1 }],
    fault: /invalid value: integer `-1`, expected usize/,
  },
  {
    name: 'machine-config fractional memory',
    req: ['PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 1.5 }],
    fault: /floating point `1.5`/,
  },
  {
    name: 'machine-config zero memory',
    req: ['PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 0 }],
    fault: /memory size/,
  },
  {
    name: 'machine-config smt with odd vcpus',
    req: ['PUT', '/machine-config', { vcpu_count: 3, mem_size_mib: 128, smt: true }],
    fault: /only be 1 or an even number when SMT/,
  },
  {
    name: 'machine-config smt null',
    req: ['PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 128, smt: null }],
    fault: /invalid type: null, expected a boolean/,
  },
  { name: 'machine-config empty PATCH', req: ['PATCH', '/machine-config', {}], fault: /^Empty PATCH request\.$/ },
  // boot-source
  {
    name: 'boot-source missing kernel',
    req: ['PUT', '/boot-source', { boot_args: 'console=ttyS0' }],
    fault: /missing field `kernel_image_path`/,
  },
  {
    name: 'boot-source kernel missing on disk',
    req: ['PUT', '/boot-source', { kernel_image_path: P('nope') }],
    fault: /kernel file cannot be opened: No such file or directory/,
  },
  {
    name: 'boot-source initrd missing on disk',
    req: ['PUT', '/boot-source', { ...kernel, initrd_path: P('nope') }],
    fault: /initrd file cannot be opened/,
  },
  {
    name: 'boot-source unknown field',
    req: ['PUT', '/boot-source', { ...kernel, initrd: 'x' }],
    fault: /unknown field `initrd`/,
  },
  {
    name: 'boot-source command line too long',
    req: ['PUT', '/boot-source', { ...kernel, boot_args: 'a'.repeat(2048) }],
    fault: /kernel command line is invalid/,
  },
  // drives
  {
    name: 'drive id mismatch',
    req: ['PUT', '/drives/rootfs', rootDrive],
    fault: /^The id from the path does not match the id from the body!$/,
  },
  {
    name: 'drive id with a dash',
    req: ['PUT', '/drives/root-1', { ...rootDrive, drive_id: 'root-1' }],
    fault: /alphanumeric characters and underscores/,
  },
  { name: 'drive without id', req: ['PUT', '/drives/', rootDrive], fault: /^The ID cannot be empty\.$/ },
  {
    name: 'drive missing is_read_only',
    req: ['PUT', '/drives/root', { drive_id: 'root', path_on_host: P('root.ext4'), is_root_device: true }],
    fault: /missing field `is_read_only`/,
  },
  {
    name: 'drive serial is not a field',
    req: ['PUT', '/drives/root', { ...rootDrive, serial: 'banger-root' }],
    fault: /unknown field `serial`/,
  },
  {
    name: 'drive file missing',
    req: ['PUT', '/drives/root', { ...rootDrive, path_on_host: P('gone.ext4') }],
    fault: /Invalid block device path: .*gone\.ext4/,
  },
  {
    name: 'second root drive',
    setup: [['PUT', '/drives/root', rootDrive]],
    req: ['PUT', '/drives/work', { ...workDrive, is_root_device: true }],
    fault: /A root block device already exists!/,
  },
  {
    name: 'bad io_engine',
    req: ['PUT', '/drives/root', { ...rootDrive, io_engine: 'Uring' }],
    fault: /unknown variant `Uring`/,
  },
  {
    name: 'drive PATCH before boot',
    setup: [['PUT', '/drives/root', rootDrive]],
    req: ['PATCH', '/drives/root', { drive_id: 'root', path_on_host: P('work.ext4') }],
    fault: /not supported before starting/,
  },
  // network interfaces
  {
    name: 'iface id mismatch',
    req: ['PUT', '/network-interfaces/eth1', netA],
    fault: /^The id from the path \[eth1\] does not match the id from the body \[eth0\]!$/,
  },
  {
    name: 'iface missing host_dev_name',
    req: ['PUT', '/network-interfaces/eth0', { iface_id: 'eth0' }],
    fault: /missing field `host_dev_name`/,
  },
  {
    name: 'iface bad MAC',
    req: ['PUT', '/network-interfaces/eth0', { ...netA, guest_mac: '06:00:00:00:01' }],
    fault: /invalid MAC address/,
  },
  {
    name: 'iface tap name too long',
    req: ['PUT', '/network-interfaces/eth0', { ...netA, host_dev_name: 'tap-name-too-long' }],
    fault: /Invalid TUN\/TAP Interface name/,
  },
  {
    name: 'iface MAC in use',
    setup: [['PUT', '/network-interfaces/eth0', netA]],
    req: ['PUT', '/network-interfaces/eth1', { ...netA, iface_id: 'eth1', host_dev_name: 'tap1' }],
    fault: /MAC address 06:00:00:00:00:01 is already in use/,
  },
  {
    name: 'iface tap in use',
    setup: [['PUT', '/network-interfaces/eth0', netA]],
    req: ['PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'tap0' }],
    fault: /Resource busy/,
  },
  {
    name: 'iface unknown field (mtu is newer than 1.5)',
    req: ['PUT', '/network-interfaces/eth0', { ...netA, mtu: 1500 }],
    fault: /unknown field `mtu`/,
  },
  // vsock, logger, metrics
  { name: 'vsock missing uds_path', req: ['PUT', '/vsock', { guest_cid: 3 }], fault: /missing field `uds_path`/ },
  {
    name: 'vsock negative cid',
    req: ['PUT', '/vsock', { guest_cid: -3, uds_path: P('v.sock') }],
    fault: /expected u32/,
  },
  {
    name: 'vsock socket path taken',
    req: ['PUT', '/vsock', { guest_cid: 3, uds_path: P('fc.log') }],
    fault: /Error binding to the host-side Unix socket: Address in use/,
  },
  {
    name: 'logger file missing',
    req: ['PUT', '/logger', { log_path: P('nope.log') }],
    fault: /Logger error: .*No such file or directory/,
  },
  {
    name: 'logger bad level',
    req: ['PUT', '/logger', { log_path: P('fc.log'), level: 'Loud' }],
    fault: /unknown variant `Loud`/,
  },
  {
    name: 'logger unknown field',
    req: ['PUT', '/logger', { log_path: P('fc.log'), module: 'api_server' }],
    fault: /unknown field `module`/,
  },
  {
    name: 'metrics file missing',
    req: ['PUT', '/metrics', { metrics_path: P('nope.metrics') }],
    fault: /Metrics error: No such file or directory/,
  },
  {
    name: 'metrics twice',
    setup: [['PUT', '/metrics', { metrics_path: P('metrics') }]],
    req: ['PUT', '/metrics', { metrics_path: P('metrics') }],
    fault: /Reinitialization of metrics not allowed/,
  },
  // actions
  {
    name: 'unknown action',
    req: ['PUT', '/actions', { action_type: 'Reboot' }],
    fault: /unknown variant `Reboot`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel`/,
  },
  {
    name: 'InstanceStart without boot source',
    setup: [['PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128 }]],
    req: ['PUT', '/actions', { action_type: 'InstanceStart' }],
    fault: /Cannot start microvm without kernel configuration/,
  },
  {
    name: 'InstanceStart with a bzImage',
    setup: [['PUT', '/boot-source', { kernel_image_path: P('bzImage') }]],
    req: ['PUT', '/actions', { action_type: 'InstanceStart' }],
    fault: /invalid kernel image: Invalid Elf magic number/,
  },
  {
    name: 'SendCtrlAltDel before boot',
    req: ['PUT', '/actions', { action_type: 'SendCtrlAltDel' }],
    fault: /not supported before starting the microVM/,
  },
  {
    name: 'FlushMetrics before boot',
    req: ['PUT', '/actions', { action_type: 'FlushMetrics' }],
    fault: /not supported before starting the microVM/,
  },
  // pre-boot only resources after InstanceStart
  ...(
    [
      ['PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128 }],
      ['PATCH', '/machine-config', { vcpu_count: 2 }],
      ['PUT', '/boot-source', kernel],
      ['PUT', '/drives/root', rootDrive],
      ['PUT', '/network-interfaces/eth0', netA],
      ['PUT', '/vsock', { guest_cid: 3, uds_path: P('late.sock') }],
      ['PUT', '/logger', { log_path: P('fc.log') }],
      ['PUT', '/metrics', { metrics_path: P('metrics') }],
      ['PUT', '/actions', { action_type: 'InstanceStart' }],
    ] as Step[]
  ).map((req) => ({
    name: `${req[0]} ${req[1]} after boot`,
    setup: boot,
    req,
    fault: /^The requested operation is not supported after starting the microVM\.$/,
  })),
  // PATCH /vm (pause / resume)
  { name: 'pause before boot', req: ['PATCH', '/vm', { state: 'Paused' }], fault: /not supported before starting/ },
  {
    name: 'unknown vm state',
    setup: boot,
    req: ['PATCH', '/vm', { state: 'Stopped' }],
    fault: /unknown variant `Stopped`, expected one of `Paused`, `Resumed`/,
  },
  { name: 'vm state missing', setup: boot, req: ['PATCH', '/vm', {}], fault: /missing field `state`/ },
  {
    name: 'body errors come before the boot-state check',
    setup: boot,
    req: ['PUT', '/drives/root', { drive_id: 'root' }],
    fault: /missing field `path_on_host`/,
  },
];

test('fake firecracker: bad requests get 400 with a fault_message', async () => {
  for (const c of BAD) {
    await withFake(async (sock, fake) => {
      for (const [m, p, b] of c.setup ?? []) {
        const r = await raw(sock, m, p, b === undefined ? undefined : J(b));
        assert.equal(r.status, 204, `${c.name}: setup ${m} ${p} gave ${JSON.stringify(r.json)}`);
      }
      const [m, p, b] = c.req;
      const r = await raw(sock, m, p, b === undefined ? undefined : J(b), c.opts);
      assert.equal(r.status, 400, `${c.name}: got ${r.status}`);
      const fm = (r.json as { fault_message?: unknown }).fault_message;
      assert.equal(typeof fm, 'string', c.name);
      assert.match(fm as string, c.fault, c.name);
      assert.equal(fake.requests.at(-1)?.status, 400, c.name);
    });
  }
});

test('fake firecracker: a full boot answers 204s, orders drives root first, and runs', async () => {
  await withFake(async (sock, fake) => {
    const ok: Step[] = [
      ['PUT', '/logger', { log_path: P('fc.log'), level: 'Warning', show_level: true, show_log_origin: false }],
      ['PUT', '/metrics', { metrics_path: P('metrics'), emit_id: true }],
      ['PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 256, smt: false }],
      ['PUT', '/boot-source', { ...kernel, initrd_path: P('initrd'), boot_args: 'console=ttyS0' }],
      ['PUT', '/drives/work', workDrive],
      ['PUT', '/drives/root', { ...rootDrive, partuuid: null }],
      ['PUT', '/network-interfaces/eth0', netA],
      ['PUT', '/vsock', { guest_cid: 3, uds_path: P('v.sock') }],
    ];
    for (const [m, p, b] of ok) {
      const r = await raw(sock, m, p, J(b));
      assert.equal(r.status, 204, `${m} ${p}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json, undefined, 'no body on 204');
    }
    assert.deepEqual(
      fake.drives.map((d) => d.drive_id),
      ['root', 'work'],
    );
    assert.ok(existsSync(P('v.sock')), 'vsock binds its socket at PUT time');
    assert.deepEqual((await raw(sock, 'GET', '/machine-config')).json, {
      vcpu_count: 2,
      mem_size_mib: 256,
      smt: false,
      track_dirty_pages: false,
    });
    assert.deepEqual((await raw(sock, 'GET', '/')).json, {
      id: 'dev',
      state: 'Not started',
      vmm_version: '1.7.0',
      app_name: 'Firecracker',
    });
    assert.equal((await raw(sock, 'PUT', '/actions', J({ action_type: 'InstanceStart' }))).status, 204);
    assert.equal(((await raw(sock, 'GET', '/')).json as { state: string }).state, 'Running');
    // Post-boot calls firecracker allows.
    assert.equal(
      (await raw(sock, 'PATCH', '/drives/work', J({ drive_id: 'work', path_on_host: P('root.ext4') }))).status,
      204,
    );
    assert.equal((await raw(sock, 'PATCH', '/network-interfaces/eth0', J({ iface_id: 'eth0' }))).status, 204);
    assert.equal((await raw(sock, 'PUT', '/actions', J({ action_type: 'SendCtrlAltDel' }))).status, 204);
    assert.equal(fake.ctrlAltDelCount, 1);
    assert.deepEqual((await raw(sock, 'GET', '/version')).json, { firecracker_version: '1.7.0' });
  });
  assert.ok(!existsSync(P('v.sock')), 'closing removes the vsock socket');
});

test('fake firecracker: defaults allow booting with only a boot source', async () => {
  await withFake(async (sock, fake) => {
    for (const [m, p, b] of boot) assert.equal((await raw(sock, m, p, J(b))).status, 204);
    assert.equal(fake.state, 'Running');
    assert.deepEqual(fake.machine, { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false });
  });
});

test('fake firecracker: re-PUT of a drive replaces it; a drive turned root moves first', async () => {
  await withFake(async (sock, fake) => {
    for (const b of [
      workDrive,
      { ...rootDrive, is_root_device: false },
      { ...workDrive, is_read_only: true },
      rootDrive,
    ]) {
      assert.equal((await raw(sock, 'PUT', `/drives/${b.drive_id}`, J(b))).status, 204);
    }
    assert.deepEqual(
      fake.drives.map((d) => [d.drive_id, d.is_root_device, d.is_read_only]),
      [
        ['root', true, false],
        ['work', false, true],
      ],
    );
  });
});

test('fake firecracker: metrics ignores unknown fields like firecracker; the API socket path must be free', async () => {
  await withFake(async (sock) => {
    assert.equal((await raw(sock, 'PUT', '/metrics', J({ metrics_path: P('metrics'), whatever: 1 }))).status, 204);
    await assert.rejects(FakeFirecracker.start(sock), /EADDRINUSE/);
  });
});

test('by default the fake reports the version whose API it models (1.5.0, the oldest banger drives)', async () => {
  const sock = P(`api-${n++}.sock`);
  const fake = await FakeFirecracker.start(sock);
  try {
    assert.equal(MIN_FIRECRACKER_VERSION, '1.5.0');
    assert.deepEqual((await raw(sock, 'GET', '/version')).json, { firecracker_version: '1.5.0' });
    assert.equal(
      (await raw(sock, 'GET', '/')).json && ((await raw(sock, 'GET', '/')).json as { vmm_version: string }).vmm_version,
      '1.5.0',
    );
  } finally {
    await fake.close();
  }
});
