import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isAppError } from '../../errors.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import type { VmmSpec } from '../driver.js';
import { FirecrackerDriver, type FirecrackerDriverOptions } from './driver.js';
import { FakeFirecrackerHost, type FakeHostOptions } from '../../../test/fakes/firecracker-process.js';

const root = mkdtempSync(join(tmpdir(), 'fc-drv-'));
after(() => rmSync(root, { recursive: true, force: true }));
writeFileSync(join(root, 'vmlinux'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]));
writeFileSync(join(root, 'initrd.img'), 'cpio');
writeFileSync(join(root, 'modules.ext4'), '');

let n = 0;
/** A VM spec on bridge networking (VmmSpec's net spells only 'user' so far) with real files in its own folder. */
function spec(over: Partial<VmmSpec> = {}): VmmSpec {
  const dir = join(root, `vm${n++}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'root.ext4'), '');
  writeFileSync(join(dir, 'work.ext4'), '');
  writeFileSync(join(dir, 'console.log'), '');
  return {
    id: 'abc',
    name: 'dev',
    vcpu: 2,
    memoryMib: 512,
    accel: 'kvm',
    kernelPath: join(root, 'vmlinux'),
    initrdPath: join(root, 'initrd.img'),
    cmdline: 'console=ttyS0 reboot=k panic=1 pci=off',
    disks: [
      { id: 'root', path: join(dir, 'root.ext4'), format: 'raw', readonly: false, serial: 'banger-root' },
      { id: 'work', path: join(dir, 'work.ext4'), format: 'raw', readonly: false, serial: 'banger-work' },
      { id: 'modules', path: join(root, 'modules.ext4'), format: 'raw', readonly: true, serial: 'banger-modules' },
    ],
    net: { mode: 'bridge', sshPort: 22, allowOutbound: true, mac: '06:00:ac:10:00:07' } as unknown as VmmSpec['net'],
    consoleLog: join(dir, 'console.log'),
    controlSocket: join(dir, 'fc.sock'),
    vmmLog: join(dir, 'vmm.log'),
    ...over,
  };
}

function setup(hostOpts: FakeHostOptions = {}, opts: Partial<FirecrackerDriverOptions> = {}) {
  const host = new FakeFirecrackerHost(hostOpts);
  after(() => host.closeAll());
  const driver = new FirecrackerDriver(new FakeRunner(), '/opt/fc/firecracker', {
    kvmUsable: true,
    tapFor: () => 'tap-dev',
    spawn: host.spawn,
    process: host.process,
    ...opts,
  });
  return { host, driver };
}

test('firecracker driver: start runs the plan through the API and boots', async () => {
  const { host, driver } = setup();
  const s = spec();
  const h = await driver.start(s);
  assert.deepEqual(host.argvs, [['/opt/fc/firecracker', '--api-sock', s.controlSocket, '--id', 'dev']]);
  assert.equal(h.controlSocket, s.controlSocket);
  assert.equal(h.startTime, 1);
  assert.equal(await driver.isAlive(h), true);
  const fake = host.only;
  assert.deepEqual(
    fake.requests.map((r) => `${r.method} ${r.path} ${r.status}`),
    [
      'GET /version 200',
      'PUT /logger 204',
      'PUT /machine-config 204',
      'PUT /boot-source 204',
      'PUT /drives/root 204',
      'PUT /drives/work 204',
      'PUT /drives/modules 204',
      'PUT /network-interfaces/eth0 204',
      'PUT /actions 204',
    ],
  );
  assert.deepEqual(fake.requests.at(-1)?.body, { action_type: 'InstanceStart' });
  assert.deepEqual(fake.requests[7]?.body, {
    iface_id: 'eth0',
    host_dev_name: 'tap-dev',
    guest_mac: '06:00:ac:10:00:07',
  });
  assert.equal(fake.state, 'Running');
  assert.deepEqual(fake.machine, { vcpu_count: 2, mem_size_mib: 512, smt: false, track_dirty_pages: false });
  assert.ok(existsSync(s.vmmLog), 'the log file exists before PUT /logger');
  assert.equal((fake.logger as { log_path: string }).log_path, s.vmmLog);

  // SIGTERM: Ctrl-Alt-Del first; this guest honours it (it takes 1 s to shut down), so no signal is needed.
  await driver.kill(h, 'SIGTERM');
  assert.deepEqual(fake.requests.at(-1)?.body, { action_type: 'SendCtrlAltDel' });
  assert.equal(fake.ctrlAltDelCount, 1);
  assert.deepEqual(host.signals, []);
  assert.equal(host.now, 1000, 'the driver waited for the guest to shut down');
  assert.equal(await driver.isAlive(h), false);
  await driver.kill(h, 'SIGTERM');
  assert.equal(fake.ctrlAltDelCount, 1, 'a dead VM is left alone');
});

test('firecracker driver: vsock and metrics when asked for', async () => {
  const { host, driver } = setup(
    {},
    {
      vsockFor: (s) => ({ udsPath: `${s.controlSocket}.vsock`, guestCid: 3 }),
      metricsFor: (s) => `${s.vmmLog}.metrics`,
    },
  );
  const s = spec();
  writeFileSync(`${s.controlSocket}.vsock`, 'stale');
  await driver.start(s);
  const paths = host.only.requests.map((r) => r.path);
  assert.deepEqual(paths.slice(0, 3), ['/version', '/logger', '/metrics']);
  assert.deepEqual(paths.slice(-2), ['/vsock', '/actions']);
  assert.equal(host.only.vsock?.uds_path, `${s.controlSocket}.vsock`);
});

test('firecracker driver: SIGTERM falls back to the signal when the guest ignores Ctrl-Alt-Del; SIGKILL skips the API', async () => {
  const { host, driver } = setup({ guestHonoursCtrlAltDel: false });
  const h1 = await driver.start(spec());
  await driver.kill(h1, 'SIGTERM');
  assert.equal(host.only.ctrlAltDelCount, 1);
  assert.deepEqual(
    host.signals,
    [{ pid: h1.pid, signal: 'SIGTERM', at: 5000 }],
    'the signal after the 5 s graceful-stop wait',
  );
  assert.equal(await driver.isAlive(h1), false);

  const h2 = await driver.start(spec());
  const fake2 = host.fakes.get(h2.pid);
  const before = fake2?.requests.length;
  const t = host.now;
  await driver.kill(h2);
  assert.deepEqual(host.signals.at(-1), { pid: h2.pid, signal: 'SIGKILL', at: t });
  assert.equal(fake2?.requests.length, before, 'no API call on SIGKILL');
  assert.equal(await driver.isAlive(h2), false);
});

test('firecracker driver: a signal the process ignores is followed by SIGKILL after 5 s; a slow exit is waited for', async () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const { host, driver } = setup({ guestHonoursCtrlAltDel: false, onTerm: 'ignore' });
    const h = await driver.start(spec());
    const t0 = host.now;
    await driver.kill(h, signal);
    // Only SIGTERM tries Ctrl-Alt-Del (ignored here for 5 s) before the signal.
    const first = signal === 'SIGTERM' ? 5000 : 0;
    assert.deepEqual(
      host.signals.map((x) => [x.signal, x.at - t0]),
      [
        [signal, first],
        ['SIGKILL', first + 5000],
      ],
      `${signal}: ignored for 5 s, then SIGKILL`,
    );
    assert.equal(await driver.isAlive(h), false, `${signal}: the process is gone when kill() returns`);
  }

  const slow = setup({ guestHonoursCtrlAltDel: false, onTerm: 4000 });
  const h = await slow.driver.start(spec());
  await slow.driver.kill(h, 'SIGTERM');
  assert.deepEqual(
    slow.host.signals.map((x) => x.signal),
    ['SIGTERM'],
    'an exit within the 5 s wait needs no SIGKILL',
  );
  assert.equal(slow.host.now, 9000);
  assert.equal(await slow.driver.isAlive(h), false);
});

test('firecracker driver: no KVM or no bridge fails fast, before spawning anything', async () => {
  const noKvm = setup({}, { kvmUsable: false });
  await assert.rejects(noKvm.driver.start(spec()), (e: unknown) => {
    assert.ok(isAppError(e));
    assert.equal(e.code, 'precondition');
    assert.match(e.message, /^firecracker needs hardware virtualization \(KVM\)/);
    assert.equal(e.hint, 'set vmm = "qemu" (or "auto") in config.toml; firecracker needs /dev/kvm with VT-x/AMD-V');
    return true;
  });
  assert.deepEqual(noKvm.host.argvs, []);

  const user = setup();
  const s = spec({ net: { mode: 'user', sshPort: 40022, allowOutbound: false, mac: '52:54:00:ab:cd:ef' } });
  await assert.rejects(user.driver.start(s), /firecracker needs bridge networking \(a tap device\)/);
  assert.deepEqual(user.host.argvs, []);
  assert.ok(!existsSync(s.vmmLog), 'nothing was touched');
});

test('firecracker driver: a rejected API call kills the process and names the logs', async () => {
  const { host, driver } = setup();
  const s = spec();
  rmSync(s.disks[1]?.path as string);
  await assert.rejects(driver.start(s), (e: unknown) => {
    assert.ok(isAppError(e));
    assert.equal(e.code, 'operation_failed');
    assert.match(
      e.message,
      /^starting VM "dev" under firecracker: firecracker API PUT \/drives\/work failed with HTTP 400: Drive config error: Invalid block device path/,
    );
    assert.match(e.hint ?? '', /vmm\.log.*console\.log/);
    return true;
  });
  assert.deepEqual(
    host.signals.map((x) => x.signal),
    ['SIGKILL'],
  );
  assert.equal(host.only.state, 'Not started');
});

test('firecracker driver: early exit, no API socket, and a too-old firecracker', async () => {
  const dead = setup({ exitOnSpawn: 'Error: Failed to open the API socket: Permission denied' });
  await assert.rejects(dead.driver.start(spec()), (e: unknown) => {
    assert.ok(isAppError(e));
    assert.match(e.message, /^firecracker exited while starting VM "dev"$/);
    assert.match(e.hint ?? '', /Failed to open the API socket/);
    return true;
  });

  const hung = setup({ hangOnSpawn: true }, { startTimeoutMs: 200 });
  const s = spec();
  await assert.rejects(
    hung.driver.start(s),
    new RegExp(`did not answer on its API socket ${s.controlSocket} within 0.2 s`),
  );
  assert.deepEqual(
    hung.host.signals.map((x) => x.signal),
    ['SIGKILL'],
  );

  const old = setup({ fake: { version: '1.4.1' } });
  await assert.rejects(
    old.driver.start(spec()),
    (e: unknown) => isAppError(e) && e.code === 'precondition' && /1\.4\.1 is too old/.test(e.message),
  );
  assert.deepEqual(
    old.host.only.requests.map((r) => r.path),
    ['/version'],
    'nothing configured on a too-old firecracker',
  );
});

test('firecracker driver: a stale API socket is removed; default spawn goes through the runner', async () => {
  const { driver } = setup();
  const s = spec();
  writeFileSync(s.controlSocket, 'left over by a crashed firecracker');
  await driver.start(s);

  const runner = new FakeRunner().on('firecracker', { pid: 900_999 });
  const host = new FakeFirecrackerHost();
  const viaRunner = new FirecrackerDriver(runner, 'firecracker', {
    kvmUsable: true,
    tapFor: () => 'tap0',
    process: host.process,
  });
  const s2 = spec();
  // The fake runner starts nothing, so the pretend process is never alive.
  await assert.rejects(viaRunner.start(s2), /firecracker exited while starting/);
  assert.deepEqual(
    runner.calls.map((c) => c.argv),
    [['firecracker', '--api-sock', s2.controlSocket, '--id', 'dev']],
  );
});

test('firecracker driver: the tap comes from the spec (bridge), the agent gets a vsock on spec.agentSocket', async () => {
  const { host, driver } = setup({}, { tapFor: undefined });
  const s = spec({
    net: { mode: 'bridge', tap: 'tap-0123abcd', mac: '06:00:ac:10:00:07' },
    agentSocket: `${spec().controlSocket}.agent`,
  });
  await driver.start(s);
  const reqs = host.only.requests;
  assert.deepEqual(reqs.find((r) => r.path === '/network-interfaces/eth0')?.body, {
    iface_id: 'eth0',
    host_dev_name: 'tap-0123abcd',
    guest_mac: '06:00:ac:10:00:07',
  });
  assert.deepEqual(reqs.find((r) => r.path === '/vsock')?.body, { guest_cid: 3, uds_path: s.agentSocket });
  const boot = reqs.find((r) => r.path === '/boot-source')?.body as { boot_args: string };
  assert.match(boot.boot_args, / banger\.agent=vsock:1024$/);
});

test('firecracker driver: pause and resume are PATCH /vm; runState reads GET /; the fake refuses both before boot', async () => {
  const { host, driver } = setup();
  const h = await driver.start(spec());
  const fake = host.only;
  assert.equal(await driver.runState(h), 'running');
  await driver.pause(h);
  assert.equal(fake.state, 'Paused');
  assert.equal(await driver.runState(h), 'paused');
  await driver.resume(h);
  assert.equal(fake.state, 'Running');
  assert.deepEqual(
    fake.requests.filter((r) => r.path === '/vm').map((r) => [r.method, r.status, r.body]),
    [
      ['PATCH', 204, { state: 'Paused' }],
      ['PATCH', 204, { state: 'Resumed' }],
    ],
  );
  fake.state = 'Not started';
  await assert.rejects(
    driver.pause(h),
    /PATCH \/vm failed with HTTP 400: The requested operation is not supported before starting/,
  );
  assert.equal(await driver.runState(h), 'other');
});
