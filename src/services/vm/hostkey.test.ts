import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { HOST_KEY_GIVEN } from '../../guest/assets.js';
import { NodeRunner } from '../../system/node-runner.js';
import { giveHostKey, GUEST_HOST_KEY, makeHostKey } from './hostkey.js';

test('host-made host key: an ed25519 pair, two calls differ, nothing left in the temp dir', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'hostkey-'));
  try {
    const a = await makeHostKey(new NodeRunner(), tmp, 'root@dev');
    const b = await makeHostKey(new NodeRunner(), tmp, 'root@dev');
    assert.match(a.privateKey.toString(), /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    assert.match(a.publicKey.toString(), /^ssh-ed25519 [A-Za-z0-9+/=]+ root@dev\n$/);
    assert.notDeepEqual(a.publicKey, b.publicKey);
    assert.deepEqual(readdirSync(tmp), []);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('giving the key: private 0600, public 0644, then the marker the gate reads (reload for a running sshd)', async () => {
  for (const running of [false, true]) {
    const calls: { path: string; data: string; mode: number | undefined }[] = [];
    const c = {
      putFile: (path: string, data: Buffer | NodeJS.ReadableStream, opts: { mode?: number } = {}) => {
        calls.push({ path, data: (data as Buffer).toString(), mode: opts.mode });
        return Promise.resolve();
      },
    };
    await giveHostKey(c as never, { privateKey: Buffer.from('PRIV'), publicKey: Buffer.from('PUB') }, running);
    assert.deepEqual(calls, [
      { path: GUEST_HOST_KEY, data: 'PRIV', mode: 0o600 },
      { path: `${GUEST_HOST_KEY}.pub`, data: 'PUB', mode: 0o644 },
      { path: HOST_KEY_GIVEN, data: running ? 'reload\n' : 'kept\n', mode: 0o600 },
    ]);
  }
});
