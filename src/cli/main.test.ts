import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../errors.js';
import type { CliContext } from './context.js';
import { buildProgram } from './main.js';
import { makeStyle } from './render/style.js';

/** A program whose daemon client records calls, answers vm.resolve with nothing and refuses the rest (so no command gets further). */
function program(): { parse: (argv: string[]) => Promise<unknown>; calls: [string, unknown][] } {
  const calls: [string, unknown][] = [];
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  const ctx = {
    client: {
      call: async (method: string, params: unknown) => {
        calls.push([method, params]);
        if (method === 'vm.resolve') return [];
        throw new Error(`unexpected call ${method}`);
      },
    },
    out: sink,
    err: sink,
    style: makeStyle(false, {}),
    version: 'test',
    env: {},
  } as unknown as CliContext;
  const p = buildProgram(
    () => ctx,
    () => undefined,
    () => undefined,
  );
  return { parse: (argv) => p.parseAsync(argv, { from: 'user' }), calls };
}

for (const argv of [
  ['vm', 'create', '--name', ''],
  ['vm', 'run', '--image', ' '],
  ['vm', 'show', ''],
  ['vm', 'delete', 'a', '', 'b'],
  ['vm', 'run', '-e', ''],
  ['image', 'pull', ''],
  ['image', 'pull', 'x', '--name', ''],
  ['kernel', 'import', '', '--kernel', '/k'],
]) {
  test(`an empty value is refused before the daemon is asked: banger ${argv.map((a) => JSON.stringify(a)).join(' ')}`, async () => {
    const { parse, calls } = program();
    await assert.rejects(
      parse(argv),
      (e: unknown) =>
        e instanceof AppError &&
        e.code === 'bad_request' &&
        /^invalid (--[a-z-]+|<[a-z]+>) "\s*": must not be empty$/.test(e.message),
    );
    assert.deepEqual(calls, []);
  });
}

test('non-empty values pass through unchanged, variadic arguments included', async () => {
  const { parse, calls } = program();
  await parse(['vm', 'delete', 'a', 'b', 'c']);
  assert.deepEqual(calls, [['vm.resolve', { refs: ['a', 'b', 'c'] }]]);
});
