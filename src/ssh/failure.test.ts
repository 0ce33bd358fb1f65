import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SshInfo } from '../api/methods.js';
import { FakeRunner } from '../../test/fakes/runner.js';
import { sshFailure } from './failure.js';

const info: SshInfo = {
  name: 'dev',
  host: '127.0.0.1',
  port: 40022,
  user: 'root',
  key: '/s/id_ed25519',
  known_hosts: '/s/known_hosts',
  host_key_alias: 'dev.vm',
};

/** What OpenSSH 9.2 prints (on stderr, exit 255) when the key of a known host changed and checking is strict. */
const CHANGED_KEY_STDERR = `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:4m2uS1m0l1Zq2oWgJ3b0P2b6m9sM8q1Zr1bG3Xk5hTw.
Please contact your system administrator.
Add correct host key in /s/known_hosts to get rid of this message.
Offending ED25519 key in /s/known_hosts:1
Host key for dev.vm has changed and you have requested strict checking.
Host key verification failed.
`;

const ssh = (code: number, stderr: string): FakeRunner => new FakeRunner().on('ssh', { code, stderr });

test('ssh exit 255 with a changed host key: a clear refusal naming the VM, the alias and how to forget the old key', async () => {
  const runner = ssh(255, CHANGED_KEY_STDERR);
  const e = await sshFailure(runner, info);
  assert.equal(e.code, 'precondition');
  assert.equal(
    e.message,
    'the ssh host key of VM "dev" (dev.vm) is not the one banger recorded on first connect; refusing to connect',
  );
  assert.match(e.hint ?? '', /ssh-keygen -R dev\.vm -f \/s\/known_hosts/);
  assert.match(e.hint ?? '', /127\.0\.0\.1:40022/);
  const [argv] = runner.callsTo('ssh');
  assert.ok(
    argv?.includes('BatchMode=yes') && argv.includes('HostKeyAlias=dev.vm') && argv.at(-1) === 'true',
    JSON.stringify(argv),
  );
});

test('any other ssh failure (refused, timed out, probe failing to run) stays "the connection failed"', async () => {
  for (const runner of [
    ssh(255, 'ssh: connect to host 127.0.0.1 port 40022: Connection refused\n'),
    ssh(0, ''),
    new FakeRunner().on('ssh', { durationMs: 60_000 }),
    new FakeRunner().on('ssh', { missing: true }),
  ]) {
    const e = await sshFailure(runner, info);
    assert.equal(e.code, 'operation_failed');
    assert.equal(e.message, 'the ssh connection to VM "dev" failed');
    assert.equal(e.hint, 'see `banger vm logs dev`');
  }
});
