import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeAgent, type FakeAgentOptions, type FakeExecIO } from '../../../test/fakes/agent.js';
import { AgentClient } from '../../agent/client.js';
import { duplexPair } from '../../agent/duplex-pair.js';
import type { ExecInFrame, ExecOutFrame } from '../../api/methods.js';
import type { StreamChannel } from '../../daemon/stream.js';
import { AppError } from '../../errors.js';
import type { ImageRow } from '../../store/images.js';
import type { VmRow } from '../../store/vms.js';
import { nullLogger, type OpContext } from '../context.js';
import { NO_RUNTIME_CONFIG } from '../image/oci-config.js';
import { planExec, VmExec, type ExecParams } from './exec.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\napp:x:1000:1001:App:/home/app:/bin/zsh\n';
const GROUP = 'root:x:0:\nstaff:x:50:\n';
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

test('planExec: env is login < image Env < -e; cwd is the request, else WorkingDir, else home; user from the request over the image', () => {
  const cfg = { ...NO_RUNTIME_CONFIG, env: ['PATH=/img/bin', 'HOME=/img', 'A=1'], working_dir: '/work', user: 'app' };
  const p = planExec({ ref: 'dev', argv: ['id'], env: { A: '2', B: 'x y' } }, cfg, PASSWD, GROUP);
  assert.deepEqual(p.spec, {
    argv: ['id'],
    env: { HOME: '/img', SHELL: '/bin/zsh', USER: 'app', LOGNAME: 'app', PATH: '/img/bin', A: '2', B: 'x y' },
    cwd: '/work',
    uid: 1000,
    gid: 1001,
  });
  assert.equal(p.cwdIsHome, false);
  const asRoot = planExec({ ref: 'dev', argv: ['id'], user: '0', cwd: '/tmp' }, cfg, PASSWD, GROUP);
  assert.deepEqual([asRoot.spec.uid, asRoot.spec.gid, asRoot.spec.cwd, asRoot.spec.env?.USER], [0, 0, '/tmp', 'root']);
  const grouped = planExec({ ref: 'dev', argv: ['id'], user: 'app:staff' }, undefined, PASSWD, GROUP);
  assert.deepEqual([grouped.spec.uid, grouped.spec.gid, grouped.spec.cwd], [1000, 50, '/home/app']);
  assert.equal(grouped.cwdIsHome, true);
  assert.throws(() => planExec({ ref: 'dev', argv: ['id'], user: 'nobody' }, undefined, PASSWD, GROUP), /nobody/);
});

test('planExec: without argv, the login shell of passwd (else /bin/sh) on a terminal of the size asked; no passwd → root in /root', () => {
  const shell = planExec({ ref: 'dev', rows: 33, cols: 101 }, undefined, PASSWD, '');
  assert.deepEqual(shell.spec.argv, ['/bin/bash', '-l']);
  assert.deepEqual(shell.spec.pty, { rows: 33, cols: 101 });
  const bare = planExec({ ref: 'dev', tty: false }, undefined, '', '');
  assert.deepEqual(bare.spec.argv, ['/bin/sh', '-l']);
  assert.equal(bare.spec.pty, undefined);
  assert.deepEqual(bare.spec.env, {
    HOME: '/root',
    SHELL: '/bin/sh',
    USER: 'root',
    LOGNAME: 'root',
    PATH: DEFAULT_PATH,
  });
  assert.equal(bare.spec.cwd, '/root');
  assert.equal(planExec({ ref: 'dev', argv: ['x'] }, undefined, '', '').spec.pty, undefined, 'a command: no terminal');
});

/** An in-memory channel: frames the test pushes, frames the service sent. */
function channel(): {
  ch: StreamChannel<ExecInFrame, ExecOutFrame>;
  push(f: ExecInFrame): void;
  end(): void;
  out: ExecOutFrame[];
  text(key: 'stdout' | 'stderr'): string;
} {
  const queue: ExecInFrame[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const out: ExecOutFrame[] = [];
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  return {
    out,
    push: (f) => {
      queue.push(f);
      notify();
    },
    end: () => {
      ended = true;
      notify();
    },
    text: (key) =>
      out
        .flatMap((f) => (key in f ? [Buffer.from((f as Record<string, string>)[key] as string, 'base64')] : []))
        .join(''),
    ch: {
      send: async (f) => {
        out.push(f);
      },
      frames: () => ({
        async *[Symbol.asyncIterator]() {
          for (;;) {
            const f = queue.shift();
            if (f) yield f;
            else if (ended) return;
            else await new Promise<void>((r) => (wake = r));
          }
        },
      }),
    },
  };
}

function ctx(): OpContext & { abort(): void } {
  const ac = new AbortController();
  return { opId: 'op-test', signal: ac.signal, progress: () => undefined, abort: () => ac.abort() };
}

/** A VmExec over one fake agent; `manifest` is the image's manifest.json. */
async function setup(
  opts: FakeAgentOptions,
  vm: Partial<VmRow> = {},
  image: Partial<ImageRow> = {},
  manifest: unknown = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'exec-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  const [host, guest] = duplexPair();
  const agent = new FakeAgent(guest, opts);
  const client = await AgentClient.connect(host, { timeoutMs: 1000 });
  const row = { id: 'a1b2c3d4e5f6', name: 'dev', imageId: 'img', state: 'running', ...vm } as VmRow;
  const img = { id: 'img', name: 'bb', dir, assetsVersion: 3, ...image } as ImageRow;
  let uses = 0;
  const exec = new VmExec({
    vms: {
      byName: (n) => (n === row.name ? row : undefined),
      get: (id) => (id === row.id ? row : undefined),
      list: () => [row],
    },
    images: { get: (id) => (id === img.id ? img : undefined) },
    agents: {
      use: async (_vm, fn) => {
        uses++;
        return fn(client);
      },
    },
    log: nullLogger,
    sshInfo: (ref) => {
      if (ref !== row.id) throw new Error(`sshInfo of ${ref}`);
      return {
        name: 'dev',
        host: '127.0.0.1',
        port: 2222,
        user: 'root',
        key: 'k',
        known_hosts: 'kh',
        host_key_alias: 'dev.vm',
      };
    },
  });
  return { exec, agent, client, uses: () => uses };
}

const run = (s: Awaited<ReturnType<typeof setup>>, p: Partial<ExecParams>, c = ctx(), chan = channel()) =>
  s.exec.exec({ ref: 'dev', ...p }, c, chan.ch);

test('exec: output as frames, stdin and its end, resize, signal reach the command; the exit status is the result', async () => {
  let io: FakeExecIO | undefined;
  const got: string[] = [];
  const s = await setup({
    files: new Map([['/etc/passwd', { data: Buffer.from(PASSWD), mode: 0o644 }]]),
    command: (x) => {
      io = x;
      x.stdout('out\n');
      x.stderr('err\n');
      x.onStdin((d) => {
        got.push(d === null ? 'EOF' : d.toString());
        if (d === null) x.exit({ kind: 'exited', code: 7 });
      });
      x.onResize((r, c) => got.push(`resize ${r}x${c}`));
      x.onSignal((n) => got.push(`signal ${n}`));
    },
  });
  const chan = channel();
  const result = run(s, { argv: ['sh', '-c', 'x'], env: { FOO: 'bar' } }, ctx(), chan);
  chan.push({ resize: { rows: 3, cols: 4 } });
  chan.push({ signal: 'SIGINT' });
  chan.push({ stdin: Buffer.from('hello').toString('base64') });
  chan.push({ eof: true });
  assert.deepEqual(await result, { exit_code: 7, signal: null });
  assert.equal(chan.text('stdout'), 'out\n');
  assert.equal(chan.text('stderr'), 'err\n');
  assert.deepEqual(got, ['resize 3x4', 'signal 2', 'hello', 'EOF']);
  assert.deepEqual(io?.request.argv, ['sh', '-c', 'x']);
  assert.equal(io?.request.env.includes('FOO=bar'), true);
  assert.equal(io?.request.cwd, '/root');
  assert.deepEqual(s.agent.violations, []);
});

test('exec: the image config applies (Env, WorkingDir, named User resolved from the guest files); a signal death is the result', async () => {
  let io: FakeExecIO | undefined;
  const s = await setup(
    {
      files: new Map([
        ['/etc/passwd', { data: Buffer.from(PASSWD), mode: 0o644 }],
        ['/etc/group', { data: Buffer.from(GROUP), mode: 0o644 }],
      ]),
      command: (x) => {
        io = x;
        x.exit({ kind: 'signaled', signal: 15 });
      },
    },
    {},
    {},
    { config: { env: ['PATH=/opt/bin', 'X=1'], working_dir: '/srv', user: 'app:staff', entrypoint: [], cmd: [] } },
  );
  assert.deepEqual(await run(s, { argv: ['id'] }), { exit_code: null, signal: 15 });
  assert.deepEqual([io?.request.uid, io?.request.gid, io?.request.cwd], [1000, 50, '/srv']);
  assert.deepEqual(io?.request.env.filter((e) => /^(PATH|X|HOME|USER)=/.test(e)).sort(), [
    'HOME=/home/app',
    'PATH=/opt/bin',
    'USER=app',
    'X=1',
  ]);
});

test('exec: the client going away aborts the command (ABORT: SIGKILL to its group)', async () => {
  let aborted = false;
  const s = await setup({ command: (x) => x.onAbort(() => (aborted = true)) });
  const c = ctx();
  const result = run(s, { argv: ['sleep', '100'] }, c);
  for (let i = 0; i < 100 && s.agent.execSessions().length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  c.abort();
  await assert.rejects(result, (e: AppError) => e.code === 'cancelled');
  assert.equal(aborted, true);
});

test('exec: a command that cannot start is an error naming it, and the connection stays (other sessions go on)', async () => {
  const s = await setup({
    command: (x) =>
      x.request.argv[0] === 'nope' ? 'exec nope: No such file or directory' : x.exit({ kind: 'exited', code: 0 }),
  });
  await assert.rejects(run(s, { argv: ['nope'] }), /exec nope: No such file/);
  assert.equal(s.client.isOpen, true);
  assert.deepEqual(await run(s, { argv: ['true'] }), { exit_code: 0, signal: null });
});

test('exec: a missing home directory falls back to the agent directory, as sshd does', async () => {
  const cwds: string[] = [];
  const s = await setup({
    command: (x) => {
      cwds.push(x.request.cwd);
      if (x.request.cwd === '/root') return 'chdir /root: No such file or directory';
      x.exit({ kind: 'exited', code: 0 });
    },
  });
  assert.deepEqual(await run(s, { argv: ['true'] }), { exit_code: 0, signal: null });
  assert.deepEqual(cwds, ['/root', '']);
  // An explicit directory is not second-guessed.
  await assert.rejects(run(s, { argv: ['true'], cwd: '/root' }), /chdir \/root/);
});

test('exec: a VM that is not running, or whose image predates the agent, is refused before any connection', async () => {
  const stopped = await setup({}, { state: 'stopped' });
  await assert.rejects(
    run(stopped, { argv: ['true'] }),
    (e: AppError) => e.code === 'precondition' && /is stopped/.test(e.message),
  );
  const old = await setup({}, {}, { assetsVersion: 2 });
  await assert.rejects(
    run(old, { argv: ['true'] }),
    (e: AppError) => e.code === 'precondition' && /guest agent/.test(e.message),
  );
  assert.equal(stopped.uses() + old.uses(), 0);
});

test('vm.ssh_info says how to reach the guest: OpenSSH when the image has sshd, else the agent (which it must have)', async () => {
  const withSshd = await setup({});
  assert.deepEqual(await withSshd.exec.sessionInfo('dev'), {
    name: 'dev',
    host: '127.0.0.1',
    port: 2222,
    user: 'root',
    key: 'k',
    known_hosts: 'kh',
    host_key_alias: 'dev.vm',
    has_sshd: true,
    agent: true,
  });
  const agentOnly = await setup({}, {}, {}, { has_sshd: false });
  assert.equal((await agentOnly.exec.sessionInfo('dev')).has_sshd, false);
  const stopped = await setup({}, { state: 'stopped' }, {}, { has_sshd: false });
  await assert.rejects(stopped.exec.sessionInfo('dev'), (e: AppError) => e.code === 'precondition');
  const noAgent = await setup({}, {}, { assetsVersion: 2 }, { has_sshd: false });
  await assert.rejects(noAgent.exec.sessionInfo('dev'), /guest agent/);
});
