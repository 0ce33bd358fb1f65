import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDaemonArgs } from './args.js';

test('bangerd flags: none runs the daemon; --version, --help, --check-migrations', () => {
  assert.equal(parseDaemonArgs([]), 'run');
  assert.equal(parseDaemonArgs(['--version']), 'version');
  assert.equal(parseDaemonArgs(['-V']), 'version');
  assert.equal(parseDaemonArgs(['--help']), 'help');
  assert.equal(parseDaemonArgs(['-h']), 'help');
  assert.equal(parseDaemonArgs(['--check-migrations']), 'check-migrations');
});

for (const [argv, re] of [
  [['--frobnicate'], /unknown option "--frobnicate"/],
  [['--version=2'], /unknown option "--version=2"/],
  [['serve'], /unexpected argument "serve"/],
  [['--version', '--help'], /one flag at most/],
] as const) {
  test(`bangerd ${argv.join(' ')} is refused`, () => {
    assert.throws(
      () => parseDaemonArgs(argv),
      (e: Error & { code?: string }) => e.code === 'bad_request' && re.test(e.message),
    );
  });
}
