/**
 * Integration (no network beyond loopback, no VMs): the daemon's HTTP API on a real bangerd
 * (docs/http-api.md): the TCP listener (api_listen, loopback) refuses a missing or wrong
 * bearer token and accepts the right one; `banger api token --rotate` locks the old one out;
 * an Origin is refused; `banger api openapi` and GET /v1/openapi.json cover every method.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { methods } from '../../src/api/methods.js';
import { TEST_CONFIG, TestHome } from '../helpers/home.js';
import { exchange, post } from '../helpers/http-wire.js';

let home: TestHome;
let port: number;
let version: string;

/** A free loopback port (bound and released; the daemon takes it right after). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

before(async () => {
  home = new TestHome('banger-api-');
  port = await freePort();
  const configDir = join(home.root, 'config', 'banger');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(join(configDir, 'config.toml'), `${TEST_CONFIG}api_listen = "127.0.0.1:${port}"\n`);
  const r = await home.banger(['daemon', 'status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const v = await home.banger(['--version']);
  version = v.stdout.trim();
  // Any command starts the daemon; the TCP listener comes up with it.
  const list = await home.banger(['vm', 'list']);
  assert.equal(list.code, 0, list.stderr);
});

after(async () => {
  await home.cleanup();
});

const tcp = (): { host: string; port: number } => ({ host: '127.0.0.1', port });
const req = (): { method: string; params: unknown; version: string } => ({ method: 'vm.list', params: {}, version });

test('the TCP listener refuses a missing or wrong token and accepts the right one; rotation locks the old one out', async () => {
  const tok = await home.banger(['api', 'token']);
  assert.equal(tok.code, 0, tok.stderr);
  const token = tok.stdout.trim();
  assert.match(token, /^[A-Za-z0-9_-]{40,}$/);

  const missing = await exchange(tcp(), post(req()));
  assert.equal(missing.status, 401, missing.raw.toString().slice(0, 300));
  assert.match((missing.lines[0] as { error: { message: string } }).error.message, /missing bearer token/);
  const wrong = await exchange(tcp(), post(req(), { authorization: `Bearer ${token.slice(0, -2)}xx` }));
  assert.equal(wrong.status, 401);
  const right = await exchange(tcp(), post(req(), { authorization: `Bearer ${token}` }));
  assert.equal(right.status, 200, right.raw.toString().slice(0, 300));
  assert.deepEqual((right.lines[0] as { result: unknown }).result, []);
  const origin = await exchange(tcp(), post(req(), { authorization: `Bearer ${token}`, origin: 'http://localhost' }));
  assert.equal(origin.status, 403);

  const rot = await home.banger(['api', 'token', '--rotate']);
  assert.equal(rot.code, 0, rot.stderr);
  const rotated = rot.stdout.trim();
  assert.notEqual(rotated, token);
  assert.equal((await exchange(tcp(), post(req(), { authorization: `Bearer ${token}` }))).status, 401);
  assert.equal((await exchange(tcp(), post(req(), { authorization: `Bearer ${rotated}` }))).status, 200);
});

test('banger api openapi and GET /v1/openapi.json document every method', async () => {
  const r = await home.banger(['api', 'openapi']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { openapi: string; paths: Record<string, unknown> };
  assert.equal(doc.openapi, '3.1.0');
  for (const m of Object.keys(methods)) assert.ok(doc.paths[`/v1/${m}`], m);
  const tok = (await home.banger(['api', 'token'])).stdout.trim();
  const served = await exchange(
    tcp(),
    `GET /v1/openapi.json HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${tok}\r\n\r\n`,
  );
  assert.equal(served.status, 200);
  assert.match(served.raw.toString(), /"\/v1\/vm\.exec"/);
});
