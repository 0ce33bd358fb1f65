import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AppError } from '../errors.js';
import { parseApiListen } from '../config/api-listen.js';
import { ApiToken, bearerMatches } from './api-token.js';

const dir = mkdtempSync(join(tmpdir(), 'api-token-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('bearerMatches: only "Bearer <the token>" passes', () => {
  const token = 'abc_DEF-123';
  const cases: [string | undefined, boolean][] = [
    [`Bearer ${token}`, true],
    [`bearer ${token}`, true],
    [`Bearer  ${token} `, true],
    [undefined, false],
    ['', false],
    ['Bearer', false],
    ['Bearer ', false],
    [token, false],
    [`Basic ${token}`, false],
    [`Bearer ${token}x`, false],
    [`Bearer ${token.slice(0, -1)}`, false],
    [`Bearer ${token} extra`, false],
    [`Bearer ${'a'.repeat(10_000)}`, false],
  ];
  for (const [header, want] of cases) assert.equal(bearerMatches(header, token), want, String(header));
  assert.equal(bearerMatches('Bearer x', ''), false, 'an empty token never matches');
});

test('ApiToken: made 0600 on first use, kept, rotated; check() follows the current token', async () => {
  const path = join(dir, 'tok');
  const t = new ApiToken(path);
  assert.equal(t.check('Bearer anything'), false, 'no token loaded: nothing passes');
  const first = await t.get();
  assert.match(first, /^[A-Za-z0-9_-]{40,}$/);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(readFileSync(path, 'utf8').trim(), first);
  assert.equal(await new ApiToken(path).get(), first, 'read back by another instance');
  assert.ok(t.check(`Bearer ${first}`));
  const second = await t.rotate();
  assert.notEqual(second, first);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(t.check(`Bearer ${first}`), false, 'the old token stops working');
  assert.ok(t.check(`Bearer ${second}`));
});

test('ApiToken: a token file others can read, or a symlink, is not trusted', async () => {
  const open = join(dir, 'open');
  writeFileSync(open, 'leaked\n', { mode: 0o644 });
  const t = await new ApiToken(open).get();
  assert.notEqual(t, 'leaked');
  assert.equal(statSync(open).mode & 0o777, 0o600);
  const target = join(dir, 'target');
  writeFileSync(target, 'planted\n', { mode: 0o600 });
  const link = join(dir, 'link');
  symlinkSync(target, link);
  await assert.rejects(new ApiToken(link).get(), /ELOOP/);
  assert.equal(readFileSync(target, 'utf8'), 'planted\n', 'the link target is untouched');
});

test('parseApiListen: loopback IPv4:port unless remote is allowed', () => {
  assert.deepEqual(parseApiListen('127.0.0.1:7681', false), { host: '127.0.0.1', port: 7681 });
  assert.deepEqual(parseApiListen('127.1.2.3:1', false), { host: '127.1.2.3', port: 1 });
  assert.deepEqual(parseApiListen('0.0.0.0:7681', true), { host: '0.0.0.0', port: 7681 });
  for (const [value, remote, msg] of [
    ['0.0.0.0:7681', false, /not a loopback address/],
    ['192.168.1.2:7681', false, /not a loopback address/],
    ['localhost:7681', false, /invalid api_listen "localhost:7681"/],
    ['127.0.0.1', false, /invalid api_listen/],
    ['127.0.0.1:70000', false, /invalid api_listen/],
    ['300.0.0.1:1', true, /invalid api_listen/],
  ] as const) {
    assert.throws(
      () => parseApiListen(value, remote),
      (e: unknown) => e instanceof AppError && e.code === 'bad_request' && msg.test(e.message),
      value,
    );
  }
});
