import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { parseHostPubKey, SshKeys } from './sshkeys.js';

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

function setup(): { keys: SshKeys; runner: FakeRunner; root: string; tmp: string } {
  const root = mkdtempSync(join(tmpdir(), 'sshkeys-'));
  roots.push(root);
  const tmp = join(root, 'tmp');
  mkdirSync(tmp);
  // A fake ssh-keygen that writes the pair slowly, like the real one under load.
  const runner = new FakeRunner().on('ssh-keygen', async (argv) => {
    const f = argv[argv.indexOf('-f') + 1] as string;
    await new Promise((r) => setTimeout(r, 30));
    if (existsSync(f)) return { code: 1, stdout: '', stderr: `${f} already exists.\nOverwrite (y/n)? ` };
    writeFileSync(f, 'PRIVATE', { mode: 0o600 });
    writeFileSync(`${f}.pub`, `ssh-ed25519 AAAA${f.length} banger\n`);
    return { code: 0, stdout: '', stderr: '' };
  });
  return {
    keys: new SshKeys(runner, join(root, 'ssh', 'id_ed25519'), join(root, 'ssh', 'known_hosts'), tmp),
    runner,
    root,
    tmp,
  };
}

test('concurrent first uses share one ssh-keygen and all get the same key', async () => {
  const { keys, runner, tmp } = setup();
  const pubs = await Promise.all([keys.ensureKey(), keys.ensureKey(), keys.ensureKey()]);
  assert.equal(runner.callsTo('ssh-keygen').length, 1);
  assert.equal(new Set(pubs).size, 1);
  assert.match(pubs[0] as string, /^ssh-ed25519 /);
  assert.deepEqual(readdirSync(tmp), [], 'the work dir is gone');
  assert.equal(await keys.ensureKey(), pubs[0]);
  assert.equal(runner.callsTo('ssh-keygen').length, 1, 'an existing key is reused');
});

test('concurrent forgets (vm delete a b) both take effect: ssh-keygen -R rewrites the whole file', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sshkeys-'));
  roots.push(root);
  const kh = join(root, 'known_hosts');
  writeFileSync(kh, 'a.vm ssh-ed25519 AAAA1\nb.vm ssh-ed25519 AAAA2\nc.vm ssh-ed25519 AAAA3\n');
  // Like the real one: read the file, take a while, write it back without the alias.
  const runner = new FakeRunner().on('ssh-keygen', async (argv) => {
    const alias = argv[argv.indexOf('-R') + 1] as string;
    const text = readFileSync(kh, 'utf8');
    await new Promise((r) => setTimeout(r, 30));
    writeFileSync(
      kh,
      text
        .split('\n')
        .filter((l) => !l.startsWith(`${alias} `))
        .join('\n'),
    );
    return { code: 0, stdout: '', stderr: '' };
  });
  const keys = new SshKeys(runner, join(root, 'id_ed25519'), kh, root);
  await Promise.all([keys.forget('a.vm'), keys.forget('b.vm')]);
  assert.equal(readFileSync(kh, 'utf8').trim(), 'c.vm ssh-ed25519 AAAA3');
});

test('parseHostPubKey: one known-type key line from the guest, comment dropped; anything else refused', () => {
  const b64 = 'AAAAC3NzaC1lZDI1NTE5AAAAIOv3';
  const cases: [string, string, string | undefined][] = [
    ['ed25519 with comment', `ssh-ed25519 ${b64} root@guest\n`, `ssh-ed25519 ${b64}`],
    ['ecdsa, no comment', `ecdsa-sha2-nistp256 ${b64}`, `ecdsa-sha2-nistp256 ${b64}`],
    ['two keys', `ssh-ed25519 ${b64}\nssh-ed25519 ${b64}\n`, undefined],
    ['unknown type', `ssh-dss ${b64}`, undefined],
    ['not base64 (a known_hosts pattern list)', `ssh-ed25519 ${b64},other.vm`, undefined],
    ['option-like', `@revoked ssh-ed25519 ${b64}`, undefined],
    ['empty', '', undefined],
    ['too long', `ssh-ed25519 ${'A'.repeat(5000)}`, undefined],
  ];
  for (const [what, text, want] of cases) assert.equal(parseHostPubKey(text), want, what);
});

test('learn records a host key once under its alias; an alias already known keeps its key (accept-new)', async () => {
  const { keys } = setup();
  await keys.learn('a.vm', 'ssh-ed25519 AAAA1');
  await keys.learn('a.vm', 'ssh-ed25519 AAAA2');
  await keys.learn('b.vm', 'ssh-ed25519 AAAA3');
  assert.equal(readFileSync(keys.knownHosts, 'utf8'), 'a.vm ssh-ed25519 AAAA1\nb.vm ssh-ed25519 AAAA3\n');
});
