import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NodeRunner } from '../../../system/node-runner.js';
import type { CliContext } from '../../context.js';
import { makeStyle } from '../../render/style.js';
import { execArgv, execVm, headMovedWarning } from './exec.js';

const runner = new NodeRunner();

test('execArgv: runs in the directory through a login shell, arguments exactly, exit status verbatim', async (t) => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'banger-exec-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { SHELL: '/bin/sh', HOME: dir };
  const args = ['a b', "it's", '$HOME', '"q"', '', 'x\ny', '*', '-n', '\\'];
  const r = await runner.run(
    execArgv(dir, ['sh', '-c', 'pwd; for a in "$@"; do printf "[%s]" "$a"; done', 'sh', ...args]),
    {
      env,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${dir}\n${args.map((a) => `[${a}]`).join('')}`);
  const s = await runner.run(execArgv(dir, ['sh', '-c', 'exit 7']), { env });
  assert.equal(s.code, 7);
  const m = await runner.run(execArgv(join(dir, 'missing'), ['true']), { env });
  assert.equal(m.code, 125);
  assert.match(m.stderr, /no directory .*missing in the guest/);
});

test('headMovedWarning: only when the host HEAD is known and differs from the prepared one', () => {
  const ws = { guest_path: '/root/repo', host_path: '/src/app', head: 'a'.repeat(40), prepared_at: 'x' };
  const cases: [typeof ws | (Omit<typeof ws, 'head'> & { head: null }), string | undefined, RegExp | undefined][] = [
    [ws, 'a'.repeat(40), undefined],
    [ws, undefined, undefined],
    [{ ...ws, head: null }, 'b'.repeat(40), undefined],
    [
      ws,
      'b'.repeat(40),
      /\/src\/app is at bbbbbbbbbbbb but dev:\/root\/repo was prepared at aaaaaaaaaaaa .*--auto-prepare/,
    ],
  ];
  for (const [w, now, want] of cases) {
    const got = headMovedWarning('dev', w, now);
    if (want === undefined) assert.equal(got, undefined);
    else assert.match(got ?? '', want);
  }
});

test('vm exec refuses a stopped VM naming banger vm start, exit 125; no command is a bad request', async () => {
  const calls: string[] = [];
  const ctx = {
    client: {
      call: async (method: string) => {
        calls.push(method);
        return { name: 'dev', state: 'stopped', workspace: null };
      },
    },
    runner,
    out: { write: () => true },
    err: { write: () => true },
    style: makeStyle(false, {}),
    stdinIsTty: false,
    env: {},
  } as unknown as CliContext;
  const r = await execVm(ctx, 'dev', {}, ['true']);
  assert.equal(r.code, 125);
  assert.match(r.err ?? '', /VM dev is stopped\nhint: start it first: banger vm start dev/);
  assert.deepEqual(calls, ['vm.show']);
  const n = await execVm(ctx, 'dev', {}, undefined);
  assert.equal(n.code, 125);
  assert.match(n.err ?? '', /needs a command after --/);
});
