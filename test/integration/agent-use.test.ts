/**
 * Integration (network: user mode with restrict=on, loopback only): the
 * daemon and CLI on top of the guest agent, in a real VM of the default image
 * under qemu: `vm health` and `vm ports` answer from the agent (also after a
 * daemon restart, which reconnects lazily), and `vm stop` powers the guest off
 * through the agent. Published ports (issue 14): `-p` at create is a qemu
 * hostfwd that reaches the guest's HTTP server; `vm publish`/`unpublish` add
 * and remove one on the running VM over QMP; a taken host port is refused
 * before any VM exists; after delete the host ports are free.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { VmHealth, VmPorts, VmView } from '../../src/api/methods.js';
import { createServer, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { freeLoopbackPort } from '../../src/system/net.js';
import { probeBind } from '../../src/system/portprobe.js';
import { TestHome } from '../helpers/home.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  missingTools(DEFAULT_VM_TOOLS),
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod',
);

let home: TestHome;

before(() => {
  if (!skip) home = new TestHome('banger-it-agentuse-');
});

after(async () => {
  if (!skip) await home.cleanup();
});

async function json<T>(args: string[]): Promise<T> {
  const r = await home.banger([...args, '--json']);
  assert.equal(r.code, 0, `banger ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** `vm ports --json` until `pred` holds (at most 30 tries, 1 s apart). */
async function portsUntil(name: string, pred: (p: VmPorts) => boolean): Promise<VmPorts> {
  let p = await json<VmPorts>(['vm', 'ports', name]);
  for (let i = 0; i < 30 && !pred(p); i++) {
    await new Promise((r) => setTimeout(r, 1000));
    p = await json<VmPorts>(['vm', 'ports', name]);
  }
  return p;
}

/** GET http://127.0.0.1:PORT/ from the host: the status, or the connection error's code. */
async function get(port: number): Promise<number | string> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(10_000) });
    await r.arrayBuffer();
    return r.status;
  } catch (e) {
    return String((e as { cause?: { code?: string } }).cause?.code ?? e);
  }
}

test(
  'default image: vm health and vm ports answer from the guest agent, also after a daemon restart; vm stop powers off through the agent; -p and vm publish/unpublish reach the guest HTTP server',
  { skip },
  async () => {
    // A port taken on the host: refused before any VM exists.
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const takenPort = (taken.address() as AddressInfo).port;
    const refused = await home.banger(['vm', 'create', '--name', 'nope', '-p', `127.0.0.1:${takenPort}:8080`]);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      new RegExp(`cannot publish 127\\.0\\.0\\.1:${takenPort}/tcp: the port is taken on the host`),
    );
    assert.deepEqual(await json<VmView[]>(['vm', 'list']), [], 'no VM was made');

    const web = await freeLoopbackPort();
    const c = await home.banger(['vm', 'create', '--name', 'use1', '-p', `127.0.0.1:${web}:8080`]);
    assert.equal(c.code, 0, c.stderr);

    const text = await home.banger(['vm', 'health', 'use1']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^use1: healthy \(banger-agent.*\)\n$/);
    const h = await json<VmHealth>(['vm', 'health', 'use1']);
    assert.equal(h.healthy, true);
    assert.equal(h.protocol_version, 2);
    assert.ok(h.uptime_s > 0);

    // Guest listeners, started through ssh (the image has sshd) as transient units.
    const listen = await home.banger([
      'vm',
      'ssh',
      'use1',
      '--',
      'sh',
      '-c',
      'systemd-run --unit=web python3 -m http.server 8080 && ' +
        'systemd-run --unit=udp python3 -c "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((\'0.0.0.0\', 9999)); time.sleep(3600)"',
    ]);
    assert.equal(listen.code, 0, listen.stderr);
    const vm = await json<VmView>(['vm', 'show', 'use1']);
    const p = await portsUntil(
      'use1',
      (x) =>
        x.ports.some((s) => s.protocol === 'tcp' && s.port === 8080) &&
        x.ports.some((s) => s.protocol === 'udp' && s.port === 9999),
    );
    const find = (proto: string, port: number) => p.ports.find((s) => s.protocol === proto && s.port === port);
    assert.deepEqual(find('tcp', 8080)?.endpoint, `127.0.0.1:${web}`, JSON.stringify(p));
    assert.deepEqual(find('udp', 9999)?.endpoint, null, JSON.stringify(p));
    assert.deepEqual(
      vm.published?.map((x) => x.spec),
      [`127.0.0.1:${web}:8080/tcp`],
    );
    assert.equal(await get(web), 200, '-p reaches the guest HTTP server');
    assert.equal(find('tcp', 22)?.endpoint, vm.ssh, 'sshd is published on the forwarded ssh port');
    const table = await home.banger(['vm', 'ports', 'use1']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^PROTO +LISTEN +UID +ENDPOINT\n/);
    assert.match(table.stdout, new RegExp(`\\ntcp +\\S+:8080 +0 +127\\.0\\.0\\.1:${web}\\n`));
    assert.match(table.stdout, /\nudp +\S+:9999 +0 +unpublished\n/);

    // At runtime, over QMP: unpublish, publish on another port; a taken one is refused.
    const un = await home.banger(['vm', 'unpublish', 'use1', String(web)]);
    assert.equal(un.code, 0, un.stderr);
    assert.equal(await get(web), 'ECONNREFUSED', 'unpublished: qemu let go of the port');
    const web2 = await freeLoopbackPort();
    const pub = await home.banger(['vm', 'publish', 'use1', `127.0.0.1:${web2}:8080`]);
    assert.equal(pub.code, 0, pub.stderr);
    assert.equal(await get(web2), 200, 'vm publish reaches the guest HTTP server');
    const clash = await home.banger(['vm', 'publish', 'use1', `127.0.0.1:${takenPort}:8080`]);
    assert.notEqual(clash.code, 0);
    assert.match(clash.stderr, /the port is taken on the host/);
    taken.close();
    assert.deepEqual(
      (await json<VmView>(['vm', 'show', 'use1'])).published?.map((x) => x.spec),
      [`127.0.0.1:${web2}:8080/tcp`],
    );

    // A restarted daemon adopts the VM and reconnects to its agent on first use.
    const stop = await home.banger(['daemon', 'stop']);
    assert.equal(stop.code, 0, stop.stderr);
    const again = await home.banger(['vm', 'health', 'use1']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(home.daemonLog(), /adopted running VM/);

    const before = home.daemonLog().length;
    const s = await home.banger(['vm', 'stop', 'use1']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal((await json<VmView>(['vm', 'show', 'use1'])).state, 'stopped');
    const log = home.daemonLog().slice(before);
    assert.match(log, /the guest agent is powering the VM off/, log);
    assert.doesNotMatch(log, /did not take the shutdown/, log);
    // The guest went down by itself (sync + poweroff): the kernel's last word is on the console.
    const logs = await home.banger(['vm', 'logs', 'use1']);
    assert.match(logs.stdout, /reboot: Power down/);

    const down = await home.banger(['vm', 'health', 'use1']);
    assert.notEqual(down.code, 0);
    assert.match(down.stderr, /VM "use1" is stopped; vm health needs it running/);

    const d = await home.banger(['vm', 'delete', 'use1']);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(home.qemuPids(), [], 'no qemu left');
    assert.equal(await probeBind('127.0.0.1', web2, 'tcp'), undefined, 'the published port is free after delete');
  },
);
