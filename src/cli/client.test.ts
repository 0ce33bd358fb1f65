import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AppError } from '../errors.js';
import { FakeRunner } from '../system/fake-runner.js';
import { Paths } from '../system/paths.js';
import { DaemonClient } from './client.js';

test('the CLI does not talk to a socket in a runtime dir that is a planted symlink', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'banger-client-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'run'), { mode: 0o700 });
  const paths = new Paths({ HOME: root, XDG_STATE_HOME: join(root, 'state'), XDG_RUNTIME_DIR: join(root, 'run') }, process.getuid?.() ?? 0);
  // Someone else's directory, with a socket that answers like a daemon.
  const planted = join(root, 'planted');
  mkdirSync(planted);
  symlinkSync(planted, paths.runtimeDir);
  let contacted = false;
  const impostor = createServer((sock) => {
    contacted = true;
    sock.end(`${JSON.stringify({ result: { pid: 1 }, op_id: 'op-x' })}\n`);
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
