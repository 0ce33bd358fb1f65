import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BootFailure, consoleTail, waitForSsh, type BootWatchInput } from './bootwatch.js';

/** A clock that advances 1 s per poll, so stall and timeout rules run without waiting. */
function harness(over: Partial<BootWatchInput> & { grows?: (tick: number) => boolean }) {
  const dir = mkdtempSync(join(tmpdir(), 'bw-'));
  const log = join(dir, 'console.log');
  writeFileSync(log, '');
  let t = 0;
  let tick = 0;
  const input: BootWatchInput = {
    vmName: 'dev',
    consoleLog: log,
    timeoutMs: 90_000,
    stallMs: 30_000,
    pollMs: 0,
    signal: new AbortController().signal,
    isAlive: async () => true,
    probe: async () => {
      tick++;
      t += 1000;
      if (over.grows?.(tick) ?? true) appendFileSync(log, `line ${tick}\n`);
      return 'none';
    },
    now: () => t,
    ...over,
  };
  return { input, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('returns once the probe reports ready', async () => {
  let n = 0;
  const h = harness({ probe: async () => (++n >= 3 ? 'ready' : 'none') });
  await waitForSsh(h.input);
  assert.equal(n, 3);
  h.cleanup();
});

const failures: { name: string; over: Parameters<typeof harness>[0]; kind: string; msg: RegExp }[] = [
  { name: 'VMM exit', over: { isAlive: async () => false }, kind: 'exited', msg: /stopped during boot/ },
  { name: 'silent console', over: { grows: (tick) => tick < 5 }, kind: 'stuck', msg: /no boot progress for 30 s/ },
  {
    name: 'ssh never answers',
    over: { timeoutMs: 10_000 },
    kind: 'ssh_timeout',
    msg: /did not accept ssh within 10 s; sshd/,
  },
];
for (const f of failures) {
  test(`boot watch: ${f.name}`, async () => {
    const h = harness(f.over);
    appendFileSync(h.input.consoleLog, '\x1b[0;32m  OK  \x1b[0m] Reached target\r\n');
    await assert.rejects(waitForSsh(h.input), (e: unknown) => {
      assert.ok(e instanceof BootFailure);
      assert.equal(e.kind, f.kind);
      assert.match(e.message, f.msg);
      assert.match(e.hint ?? '', /banger vm logs dev/);
      return true;
    });
    h.cleanup();
  });
}

test('a console that is silent after sshd answered is not a stuck boot', async () => {
  const h = harness({ grows: () => false, timeoutMs: 45_000, probe: undefined });
  let tick = 0;
  let t = 0;
  h.input.now = () => t;
  h.input.probe = async () => {
    tick++;
    t += 1000;
    return tick > 2 ? 'banner' : 'none';
  };
  await assert.rejects(waitForSsh(h.input), (e: unknown) => e instanceof BootFailure && e.kind === 'ssh_timeout');
  h.cleanup();
});

test('cancellation', async () => {
  const ac = new AbortController();
  ac.abort();
  const h = harness({ signal: ac.signal });
  await assert.rejects(waitForSsh(h.input), (e: Error & { code?: string }) => e.code === 'cancelled');
  h.cleanup();
});

test('console tail strips terminal escapes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bw-'));
  const log = join(dir, 'c.log');
  writeFileSync(log, 'a\r\n\x1b[0;1;31mFAILED\x1b[0m x\n\nb\n');
  assert.equal(await consoleTail(log, 2), 'FAILED x\nb');
  assert.equal(await consoleTail(join(dir, 'missing')), '');
  rmSync(dir, { recursive: true, force: true });
});
