import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { nullLogger, quietContext } from '../context.js';
import { probeSshBanner, sshdListening, VmBoot, type BootDeps } from './boot.js';

/** A loopback server that greets each connection with `greeting` (or closes it at once when undefined). */
async function server(greeting: string | undefined): Promise<{ port: number; srv: Server }> {
  const srv = createServer((s) => {
    if (greeting === undefined) s.destroy();
    else s.end(greeting);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return { port: addr.port, srv };
}

test('probeSshBanner: an sshd banner is ready; a connection closed without one is not', async () => {
  const up = await server('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n');
  const down = await server(undefined);
  try {
    assert.equal(await probeSshBanner({ host: '127.0.0.1', port: up.port }), 'ready');
    assert.equal(await probeSshBanner({ host: '127.0.0.1', port: down.port }), 'none');
  } finally {
    up.srv.close();
    down.srv.close();
  }
});

test('probeSshBanner: an sshd that accepted is waited for (a slow re-exec under TCG), not abandoned and probed again', async () => {
  // The banner comes 2 s after the connection: a 1.5 s probe gave up and started another sshd child.
  const srv = createServer((s) => {
    const t = setTimeout(() => s.end('SSH-2.0-OpenSSH_9.2p1\r\n'), 2000);
    s.on('close', () => clearTimeout(t));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  try {
    assert.ok(addr !== null && typeof addr !== 'string');
    assert.equal(await probeSshBanner({ host: '127.0.0.1', port: addr.port }), 'ready');
  } finally {
    srv.close();
  }
});

test('waitReady: sshd is ready at its banner, with no ssh login of its own (vm run -- cmd pays one handshake)', async () => {
  const up = await server('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n');
  const dir = mkdtempSync(join(tmpdir(), 'boot-test-'));
  const ran: string[][] = [];
  const deps = {
    paths: { vmDir: () => dir },
    driver: { isAlive: async () => true },
    runner: {
      run: async (argv: string[]) => {
        ran.push(argv);
        return { code: 0, stdout: '', stderr: '' };
      },
    },
    runtime: {
      sshInfo: (vm: { sshPort: number }) => ({
        host: '127.0.0.1',
        port: vm.sshPort,
        user: 'root',
        key: join(dir, 'id'),
        known_hosts: join(dir, 'kh'),
        host_key_alias: 't.vm',
      }),
    },
    agents: {},
    log: nullLogger,
    sshWaitTimeoutMs: 5000,
    tscKhz: undefined,
  } as unknown as BootDeps;
  try {
    const boot = new VmBoot(deps);
    const vm = { id: 'id1', name: 't', sshPort: up.port } as unknown as Parameters<VmBoot['waitReady']>[0];
    const handles = { pid: 1, startTime: 1, controlSocket: '', sshPort: up.port };
    await boot.waitReady(vm, handles, quietContext(), { agent: false, sshd: true, orderlyShutdown: true });
    assert.deepEqual(ran, [], 'no ssh process is run to decide readiness');
    // With an agent, the host key the login used to record (accept-new) is read through it.
    const learned: string[] = [];
    deps.keys = { learn: async (alias, key) => void learned.push(`${alias} ${key}`) };
    (deps as unknown as { agents: unknown }).agents = {
      waitBoot: async () => ({ uptimeMs: 1 }),
      use: async (_vm: unknown, fn: (c: unknown) => Promise<unknown>) =>
        fn({ getFile: async () => ({ data: Buffer.from('ssh-ed25519 AAAAkey root@t\n'), info: {} }) }),
    };
    await new VmBoot(deps).waitReady(vm, handles, quietContext(), { agent: true, sshd: true, orderlyShutdown: true });
    assert.deepEqual(ran, []);
    assert.deepEqual(learned, ['t.vm ssh-ed25519 AAAAkey']);
  } finally {
    up.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sshdListening: a TCP socket on port 22, any address or family, is sshd up', () => {
  const cases: { ports: { protocol: 'tcp' | 'udp'; port: number }[]; want: boolean }[] = [
    { ports: [], want: false },
    { ports: [{ protocol: 'tcp', port: 22 }], want: true },
    { ports: [{ protocol: 'udp', port: 22 }], want: false },
    { ports: [{ protocol: 'tcp', port: 2222 }], want: false },
    {
      ports: [
        { protocol: 'tcp', port: 8080 },
        { protocol: 'tcp', port: 22 },
      ],
      want: true,
    },
  ];
  for (const c of cases) assert.equal(sshdListening(c.ports), c.want, JSON.stringify(c.ports));
});
