import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AppError } from '../errors.js';
import { FakeRunner } from '../../test/fakes/runner.js';
import { NodeRunner } from '../system/node-runner.js';
import { Paths } from '../system/paths.js';
import { StateLock } from '../system/statelock.js';
import type { DetachedOptions } from '../system/runner.js';
import { DaemonClient, versionSwapRefusal } from './client.js';
import { startFailure } from './daemon-start.js';

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

function home(): Paths {
  const root = mkdtempSync(join(tmpdir(), 'client-'));
  roots.push(root);
  const paths = new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0);
  mkdirSync(paths.runtimeDir, { recursive: true });
  mkdirSync(paths.configDir, { recursive: true });
  return paths;
}

/** Spawns a stand-in for bangerd that writes `text` to the daemon log and exits 1. */
class DyingDaemon extends NodeRunner {
  spawned = 0;
  constructor(private readonly text: string) {
    super();
  }
  override spawnDetached(_argv: readonly string[], opts: DetachedOptions): Promise<number> {
    this.spawned++;
    return super.spawnDetached(
      [process.execPath, '-e', `process.stderr.write(${JSON.stringify(this.text)}); process.exit(1)`],
      opts,
    );
  }
}

test('a bad config.toml is named by the CLI before any daemon is started', async () => {
  const paths = home();
  writeFileSync(paths.configFile, '[vm_defaults]\nmemory_mib = "lots"\n');
  const runner = new FakeRunner();
  const started = Date.now();
  await assert.rejects(new DaemonClient(paths, runner, 'test').call('vm.list', {}), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, /vm_defaults\.memory_mib/);
    assert.match(e.message, /lots/);
    return true;
  });
  assert.deepEqual(runner.calls, [], 'no daemon was spawned');
  assert.ok(Date.now() - started < 10_000, 'not a start timeout');
});

test('a daemon that dies while starting is reported with its own error at once', async () => {
  const paths = home();
  const runner = new DyingDaemon(
    '2024-01-01T00:00:00.000Z INFO bangerd starting\nbangerd: the state directory is in use by another bangerd (pid 4242)\nhint: stop it with `banger daemon stop`\n',
  );
  await assert.rejects(new DaemonClient(paths, runner, 'test').call('vm.list', {}), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, 'operation_failed');
    assert.match(
      e.message,
      /^bangerd exited while starting: the state directory is in use by another bangerd \(pid 4242\)$/,
    );
    assert.match(e.hint ?? '', /stop it with `banger daemon stop`/);
    assert.match(e.hint ?? '', /bangerd\.log/);
    return true;
  });
  assert.equal(runner.spawned, 1);
});

test('a daemon that lost a start race to another one (which holds the state dir) is not an error: the CLI waits for the winner', async () => {
  const paths = home();
  mkdirSync(paths.stateDir, { recursive: true });
  // The winner: holds the state-dir lock now and answers on the socket a moment later.
  const lock = await StateLock.acquire(paths.stateLock, paths.stateDir);
  const winner = createServer((_req, res) =>
    res.end(`${JSON.stringify({ result: ['from-the-winner'], op_id: 'op-x' })}\n`),
  );
  const listening = new Promise<void>((r) => setTimeout(() => winner.listen(paths.socket, r), 500));
  try {
    const runner = new DyingDaemon(`bangerd: bangerd is already running on state dir ${paths.stateDir} (pid 4242)\n`);
    assert.deepEqual(await new DaemonClient(paths, runner, 'test').call('vm.list', {}), ['from-the-winner']);
    assert.equal(runner.spawned, 1);
  } finally {
    await listening;
    winner.close();
    lock.release();
  }
});

test('startFailure: the last bangerd line and its hint, a fatal stack, or the last log line', () => {
  const log = '/s/bangerd.log';
  const fatal = startFailure(
    'x INFO starting\nbangerd: fatal: SqliteError: file is not a database\n    at Database (/x.js:1:1)\n',
    log,
  );
  assert.equal(fatal.message, 'bangerd exited while starting: SqliteError: file is not a database');
  assert.equal(fatal.hint, `the daemon log is ${log}`);
  const older = startFailure('bangerd: old failure\nhint: old\nx INFO bangerd starting\nbangerd: new failure\n', log);
  assert.equal(older.message, 'bangerd exited while starting: new failure');
  assert.equal(older.hint, `the daemon log is ${log}`);
  assert.match(startFailure('Segmentation fault\n', log).message, /its log ends with: Segmentation fault$/);
  assert.match(startFailure('', log).message, /without saying why/);
});

test('the CLI does not talk to a socket in a runtime dir that is a planted symlink', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'banger-client-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'run'), { mode: 0o700 });
  const paths = new Paths(
    { HOME: root, XDG_STATE_HOME: join(root, 'state'), XDG_RUNTIME_DIR: join(root, 'run') },
    process.getuid?.() ?? 0,
  );
  // Someone else's directory, with a socket that answers like a daemon.
  const planted = join(root, 'planted');
  mkdirSync(planted);
  symlinkSync(planted, paths.runtimeDir);
  let contacted = false;
  const impostor = createServer((_req, res) => {
    contacted = true;
    res.end(`${JSON.stringify({ result: { pid: 1 }, op_id: 'op-x' })}\n`);
  });
  await new Promise<void>((r) => impostor.listen(join(planted, 'bangerd.sock'), r));
  t.after(() => impostor.close());

  const runner = new FakeRunner();
  const client = new DaemonClient(paths, runner, '1.0');
  await assert.rejects(client.callNoStart('daemon.status', {}), (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, 'precondition');
    assert.match(e.message, /is a symbolic link/);
    return true;
  });
  await assert.rejects(client.call('vm.list', {}), /is a symbolic link/);
  assert.equal(contacted, false);
  assert.deepEqual(runner.calls, [], 'no daemon is started');
});

test('versionSwapRefusal: an idle daemon of another version may be replaced; a busy one is refused, naming its work', () => {
  const st = { pid: 4242, version: '1.0+old', uptime_s: 9, socket: '/s', state_dir: '/d', operations: 0 };
  const statusOnly = [
    { op_id: 'op-l', method: 'daemon.operations.list', running_s: 0 },
    { op_id: 'op-s', method: 'daemon.status', running_s: 0 },
  ];
  const pull = { op_id: 'op-abc', method: 'kernel.pull', running_s: 12 };
  const cases: { what: string; operations: number; ops: typeof statusOnly | undefined; refused: RegExp | undefined }[] =
    [
      { what: 'idle, no listing', operations: 0, ops: undefined, refused: undefined },
      {
        what: 'idle, listing holds only daemon.* requests (ours or another CLI status)',
        operations: 2,
        ops: statusOnly,
        refused: undefined,
      },
      {
        what: 'busy, listing unreadable (older daemon)',
        operations: 3,
        ops: undefined,
        refused: /busy with 3 operation\(s\)/,
      },
      {
        what: 'busy, named',
        operations: 2,
        ops: [...statusOnly, pull],
        refused: /busy with kernel\.pull \(op-abc, 12s\)/,
      },
    ];
  for (const c of cases) {
    const e = versionSwapRefusal({ ...st, operations: c.operations }, c.ops, '2.0+new');
    if (c.refused === undefined) {
      assert.equal(e, undefined, c.what);
      continue;
    }
    assert.ok(e instanceof AppError, c.what);
    assert.equal(e.code, 'bad_version', c.what);
    assert.match(e.message, c.refused, c.what);
    assert.match(e.message, /pid 4242 is version 1\.0\+old|pid 4242\) is version 1\.0\+old/, c.what);
    assert.match(e.message, /this CLI is 2\.0\+new/, c.what);
    assert.match(e.hint ?? '', /retry when they finish/, c.what);
  }
});
