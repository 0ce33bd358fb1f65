import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../src/errors.js';
import { FakeRunner, UnexpectedCommand } from './runner.js';
import { NodeRunner } from '../../src/system/node-runner.js';

async function readAll(s: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const c of s) text += String(c);
  return text;
}

const isCode = (code: string, re: RegExp) => (e: unknown) =>
  e instanceof AppError && e.code === code && re.test(e.message);

test('strict by default: an unmatched command fails the call and stays listed even when swallowed', async () => {
  const r = new FakeRunner().on('true', {});
  assert.deepEqual(await r.run(['true']), { code: 0, stdout: '', stderr: '' });
  await assert.rejects(
    r.run(['rm', '-rf', '/x']),
    (e: unknown) => e instanceof UnexpectedCommand && /"rm","-rf","\/x"/.test(e.message),
  );
  await r.check(['cp', 'a', 'b']).catch(() => undefined);
  assert.throws(() => r.stream(['mmdebstrap']), UnexpectedCommand);
  await assert.rejects(r.spawnDetached(['qemu-system-x86_64'], { logFile: '/dev/null' }), UnexpectedCommand);
  assert.deepEqual(r.unexpected, [['rm', '-rf', '/x'], ['cp', 'a', 'b'], ['mmdebstrap'], ['qemu-system-x86_64']]);
  assert.throws(() => r.assertNoUnexpected(), /4 unexpected command\(s\):\n {2}\["rm","-rf","\/x"\]/);
  assert.equal(r.calls.length, 5, 'every call is recorded, matched or not');
});

test('permissive mode answers unmatched commands with exit 0', async () => {
  const r = new FakeRunner({ strict: false });
  assert.deepEqual(await r.run(['anything']), { code: 0, stdout: '', stderr: '' });
  r.assertNoUnexpected();
});

test('a missing program fails as NodeRunner fails for a spawn ENOENT', async () => {
  const real = await new NodeRunner().run(['banger-no-such-program-xyz']).then(
    () => undefined,
    (e: unknown) => e,
  );
  const r = new FakeRunner().on('banger-no-such-program-xyz', { missing: true });
  const fake = await r.run(['banger-no-such-program-xyz']).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(real instanceof AppError && fake instanceof AppError);
  assert.deepEqual([fake.code, fake.message, fake.hint], [real.code, real.message, real.hint]);
  await assert.rejects(
    r.stream(['banger-no-such-program-xyz']).done,
    (e: unknown) => e instanceof AppError && e.message === real.message,
  );
  await assert.rejects(
    r.spawnDetached(['banger-no-such-program-xyz'], { logFile: '/dev/null' }),
    (e: unknown) => e instanceof AppError && e.message === real.message,
  );
});

test("timeouts: a command longer than timeoutMs fails with the runner's timeout error; a hang without any bound fails the test", async () => {
  const r = new FakeRunner().on('ssh', { durationMs: 10_000, stdout: 'late' }).on('sleep', { durationMs: Infinity });
  await assert.rejects(
    r.run(['ssh', 'vm'], { timeoutMs: 5000 }),
    isCode('operation_failed', /^command timed out after 5000 ms: ssh vm$/),
  );
  assert.equal((await r.run(['ssh', 'vm'], { timeoutMs: 20_000 })).stdout, 'late');
  await assert.rejects(r.run(['sleep'], { timeoutMs: 1 }), /timed out after 1 ms/);
  await assert.rejects(r.run(['sleep']), /never ends and the caller set no timeoutMs or signal/);
  assert.throws(
    () => r.assertNoUnexpected(),
    /1 command\(s\) that never end were run without timeoutMs or signal:\n {2}\["sleep"\]/,
  );
});

test('abort signals: aborted before the call, or while the command runs', async () => {
  const r = new FakeRunner().on('sleep', { durationMs: Infinity }).on('true', {});
  const early = new AbortController();
  early.abort();
  await assert.rejects(r.run(['true'], { signal: early.signal }), isCode('cancelled', /^cancelled: true$/));
  const ac = new AbortController();
  const p = r.run(['sleep', 'inf'], { signal: ac.signal });
  ac.abort();
  await assert.rejects(p, isCode('cancelled', /^cancelled: sleep inf$/));

  // An async responder that has not answered yet is cut short too.
  let answer!: () => void;
  const slow = new FakeRunner().on('slow', () => new Promise((resolve) => (answer = () => resolve({ stdout: 'x' }))));
  const ac2 = new AbortController();
  const p2 = slow.run(['slow'], { signal: ac2.signal });
  ac2.abort();
  await assert.rejects(p2, isCode('cancelled', /cancelled: slow/));
  answer();
});

test('stream: stdout carries the output, done gives a non-zero exit, kill ends a hung stream with 128, abort cancels', async () => {
  const r = new FakeRunner()
    .on('mmdebstrap', { stdout: 'tar bytes', code: 1, stderr: 'E: mirror unreachable' })
    .on('cat', { durationMs: Infinity });
  const s = r.stream(['mmdebstrap', '-']);
  assert.equal(await readAll(s.stdout), 'tar bytes');
  assert.deepEqual(await s.done, { code: 1, stdout: '', stderr: 'E: mirror unreachable' });

  const hung = r.stream(['cat']);
  hung.kill();
  assert.equal((await hung.done).code, 128);
  assert.equal(await readAll(hung.stdout), '');

  const ac = new AbortController();
  const aborted = r.stream(['cat'], { signal: ac.signal });
  ac.abort();
  await assert.rejects(aborted.done, isCode('cancelled', /cancelled: cat/));
});

test("spawnDetached returns the rule's pid or the next pretend pid", async () => {
  const r = new FakeRunner().on('qemu', {}).on('fc', { pid: 77 });
  assert.equal(await r.spawnDetached(['qemu'], { logFile: '/dev/null' }), 4242);
  assert.equal(await r.spawnDetached(['qemu'], { logFile: '/dev/null' }), 4243);
  assert.equal(await r.spawnDetached(['fc'], { logFile: '/dev/null' }), 77);
});
