import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeAgent, type FakeExecIO } from '../../../test/fakes/agent.js';
import { Banger, BangerTimeoutError, ExecError, type Transport } from '@banger/sdk';
import { AgentClient } from '../../agent/client.js';
import { duplexPair } from '../../agent/duplex-pair.js';
import { isMethod, methods } from '../../api/methods.js';
import { AppError } from '../../errors.js';
import { nullLogger } from '../../services/context.js';
import { VmProcesses } from '../../services/vm/processes.js';
import type { ImageRow } from '../../store/images.js';
import type { VmRow } from '../../store/vms.js';
import { procRoutes } from './proc.js';

/*
 * @banger/sdk over a transport that checks params with the contract and serves them with the
 * daemon's proc.* routes on a fake agent: the SDK's offsets, detach/attach, check and timeouts.
 */

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function setup(command: (io: FakeExecIO) => void): Promise<Banger> {
  const dir = mkdtempSync(join(tmpdir(), 'sdk-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'manifest.json'), '{}');
  const [host, guest] = duplexPair();
  new FakeAgent(guest, { command });
  const client = await AgentClient.connect(host, { timeoutMs: 1000 });
  const row = { id: 'a1b2c3d4e5f6', name: 'dev', imageId: 'img', state: 'running', updatedAt: '' } as VmRow;
  const procs = new VmProcesses({
    vms: { byName: () => row, get: () => row, list: () => [row], touch: () => undefined },
    images: { get: () => ({ id: 'img', name: 'bb', dir, assetsVersion: 3 }) as ImageRow },
    agents: { use: async (_vm, fn) => fn(client) },
    log: nullLogger,
  });
  const routes = procRoutes(procs) as unknown as Record<string, (p: unknown, c: unknown) => unknown>;
  const transport: Transport = {
    async call(method, params, opts) {
      if (method === 'daemon.status') return {};
      if (method === 'vm.show') return { id: row.id, name: row.name, state: 'running' };
      if (!isMethod(method)) throw new Error(`unknown ${method}`);
      const parsed = methods[method].params.parse(params);
      const ac = new AbortController();
      opts.signal?.addEventListener('abort', () => ac.abort());
      const route = routes[method];
      if (!route) throw new Error(`no route ${method}`);
      try {
        return await route(parsed, { opId: 'op', signal: ac.signal, progress: () => undefined });
      } catch (e) {
        if (e instanceof AppError) throw Object.assign(new Error(e.message), { code: e.code });
        throw e;
      }
    },
  };
  return Banger.connect({ transport });
}

/** The fake guest: `exit N` prints and exits N; `sleep` waits for an abort; `chatty` prints in steps. */
function guest(io: FakeExecIO): void {
  const [cmd, arg] = io.request.argv[2]?.split(' ') ?? io.request.argv;
  if (cmd === 'exit') {
    io.stdout('out\n');
    io.stderr('err\n');
    io.exit({ kind: 'exited', code: Number(arg) });
  } else if (cmd === 'chatty') {
    io.stdout('one\n');
    setTimeout(() => io.stdout('two\n'), 30);
    setTimeout(() => io.exit({ kind: 'exited', code: 0 }), 60);
  }
}

test('sdk exec: exit 3 is a result, not an error; check: true throws ExecError carrying stdout/stderr', async () => {
  const b = await setup(guest);
  const vm = await b.vms.get('dev');
  const r = await vm.sh('exit 3');
  assert.deepEqual(r, { exitCode: 3, signal: null, timedOut: false, stdout: 'out\n', stderr: 'err\n' });
  await assert.rejects(vm.sh('exit 4', { check: true }), (e: unknown) => {
    assert.ok(e instanceof ExecError);
    assert.deepEqual([e.exitCode, e.stdout, e.stderr], [4, 'out\n', 'err\n']);
    return true;
  });
});

test('sdk spawn → detach → attach from offset 0 gets all output', async () => {
  const b = await setup(guest);
  const vm = await b.vms.get('dev');
  const h = await vm.spawn(['/bin/sh', '-c', 'chatty']);
  h.detach();
  await new Promise((r) => setTimeout(r, 100));
  const again = await b.processes.attach(h.id, { fromOffset: 0 });
  const r = await again.wait();
  assert.deepEqual([r.exitCode, r.stdout], [0, 'one\ntwo\n']);
  const fromFour = await b.processes.attach(h.id, { fromOffset: 4 });
  assert.equal((await fromFour.wait()).stdout, 'two\n');
});

test('sdk exec timeout kills and says so; with check it throws BangerTimeoutError naming timeout', async () => {
  const b = await setup(guest);
  const vm = await b.vms.get('dev');
  const r = await vm.sh('sleep', { timeout: 50 });
  assert.deepEqual([r.timedOut, r.signal, r.exitCode], [true, 9, null]);
  await assert.rejects(
    vm.sh('sleep', { timeout: 50, check: true }),
    (e: unknown) => e instanceof BangerTimeoutError && e.kind === 'timeout',
  );
});

test('sdk: aborting an exec rejects with the abort reason and kills the command (its process group)', async () => {
  let killed = 0;
  let running!: () => void;
  const started = new Promise<void>((r) => (running = r));
  const b = await setup((io) => {
    io.onAbort(() => killed++);
    running();
  });
  const vm = await b.vms.get('dev');
  const ac = new AbortController();
  const p = vm.sh('sleep', { signal: ac.signal });
  await started;
  // Past the start: the SDK has the id (or the daemon kills a process whose starter went away).
  ac.abort(new Error('stop it'));
  await assert.rejects(p, /stop it/);
  for (let i = 0; i < 500 && killed === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(killed, 1);
});
