import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { AppError } from '../../errors.js';
import { openStore } from '../../store/db.js';
import { ImageRepo } from '../../store/images.js';
import { PortRepo } from '../../store/ports.js';
import { VmRepo, type VmRow } from '../../store/vms.js';
import { freeLoopbackPort } from '../../system/net.js';
import { probeBind } from '../../system/portprobe.js';
import type { PortForward, VmmDriver, VmmHandles } from '../../vmm/driver.js';
import { imageRow, vmRow } from '../../../test/helpers/rows.js';
import { nullLogger } from '../context.js';
import { PortProxies } from '../network/portproxy.js';
import { formatPublication } from './portspec.js';
import { VmPublisher } from './publish.js';

const handles = { pid: 1, startTime: 1, controlSocket: '/r/v1.qmp', sshPort: 40022 };

function setup(row: Partial<VmRow>, failAdd?: (f: PortForward) => boolean) {
  const db = openStore(':memory:');
  new ImageRepo(db).insert(imageRow());
  const vms = new VmRepo(db);
  vms.insert(vmRow({ state: 'running', handles, ...row }));
  const calls: string[] = [];
  const driver = {
    kind: 'qemu',
    forward: async (_h: VmmHandles, op: 'add' | 'remove', f: PortForward) => {
      if (op === 'add' && failAdd?.(f)) throw new AppError('operation_failed', `qemu could not forward ${f.hostPort}`);
      calls.push(`${op} ${f.protocol}:${f.address}:${f.hostPort}-:${f.guestPort}`);
    },
  } as unknown as VmmDriver;
  const ports = new PortRepo(db);
  const proxies = new PortProxies();
  const pub = new VmPublisher({
    vms,
    ports,
    driver,
    proxies,
    log: nullLogger,
    address: () => '127.0.0.1',
    resolve: (ref) => vms.byName(ref) ?? (vms.get(ref) as VmRow),
    lock: (_id, fn) => fn(),
  });
  return { pub, vms, calls, ports, proxies };
}

test('vm publish on a running user-mode VM: hostfwd_add over the driver, recorded; unpublish removes both', async () => {
  const { pub, calls } = setup({});
  const p = await freeLoopbackPort();
  const r = await pub.publish('dev', [`${p}:8080`, `0.0.0.0:${p}:53/udp`]);
  assert.deepEqual(
    r.published.map((x) => x.spec),
    [`127.0.0.1:${p}:8080/tcp`, `0.0.0.0:${p}:53/udp`],
  );
  assert.deepEqual(calls, [`add tcp:127.0.0.1:${p}-:8080`, `add udp:0.0.0.0:${p}-:53`]);
  await assert.rejects(
    pub.unpublish('dev', [`${p + 1}`]),
    (e: unknown) => e instanceof AppError && e.code === 'not_found' && e.message.includes(`"${p + 1}"`),
  );
  const after = await pub.unpublish('dev', [`${p}`]);
  assert.deepEqual(
    after.published.map((x) => x.spec),
    [`0.0.0.0:${p}:53/udp`],
  );
  assert.equal(calls.at(-1), `remove tcp:127.0.0.1:${p}-:8080`);
});

test('vm publish: a failing forward undoes the ones this call added and records nothing', async () => {
  const [a, b] = [await freeLoopbackPort(), await freeLoopbackPort()];
  const { pub, calls, ports } = setup({}, (f) => f.hostPort === b);
  await assert.rejects(pub.publish('dev', [`${a}:80`, `${b}:81`]), /qemu could not forward/);
  assert.deepEqual(calls, [`add tcp:127.0.0.1:${a}-:80`, `remove tcp:127.0.0.1:${a}-:80`]);
  assert.deepEqual(ports.list('v1'), []);
});

test('vm publish: a taken host port is refused before the VMM is asked; a stopped VM only records', async () => {
  const taken = createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  const port = (taken.address() as AddressInfo).port;
  const { pub, calls, vms, ports } = setup({});
  try {
    await assert.rejects(pub.publish('dev', [`${port}:80`]), /cannot publish 127\.0\.0\.1:\d+\/tcp: the port is taken/);
    assert.deepEqual(calls, []);
    assert.deepEqual(ports.list('v1'), []);
  } finally {
    taken.close();
  }
  vms.update('v1', { handles: undefined });
  vms.setState('v1', 'stopped');
  const p = await freeLoopbackPort();
  await pub.publish('dev', [`${p}:80`]);
  assert.deepEqual(calls, [], 'nothing runs: applied at the next start');
  assert.deepEqual(ports.list('v1').map(formatPublication), [`127.0.0.1:${p}:80/tcp`]);
});

test('bridge mode: publish opens a relay to the guest address, stop (down) closes it, startup opens it again', async () => {
  const guest = createServer((s) => s.end('hello from the guest'));
  guest.listen(0, '127.0.0.1');
  await once(guest, 'listening');
  const gp = (guest.address() as AddressInfo).port;
  const { pub, vms, calls } = setup({ networkMode: 'bridge' });
  const hp = await freeLoopbackPort();
  try {
    await pub.publish('dev', [`${hp}:${gp}`]);
    const c = createConnection({ host: '127.0.0.1', port: hp });
    let got = '';
    c.on('data', (d) => (got += d.toString()));
    await once(c, 'close');
    assert.equal(got, 'hello from the guest');
    assert.deepEqual(calls, [], 'no VMM forward in bridge mode');
    await pub.down('v1');
    assert.equal(await probeBind('127.0.0.1', hp, 'tcp'), undefined, 'closed at stop');
    await pub.startup(vms.list());
    assert.equal(await probeBind('127.0.0.1', hp, 'tcp'), 'EADDRINUSE', 'open again after a daemon restart');
  } finally {
    await pub.down('v1');
    guest.close();
  }
});
