import { mkdtemp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentClient } from '../../agent/client.js';
import { HOST_KEY_GIVEN } from '../../guest/assets.js';
import type { CommandRunner } from '../../system/runner.js';
import { removeTree } from '../fsutil.js';

/* A restored guest's ssh host key, made on the host (issue 17): a guest restored from a template
   or snapshot has only just had its RNG reseeded, and ssh-keygen under emulation costs half a
   second on the way to sshd. The agent writes it; the gate (the bootstrap's `identity gate=1`)
   sees HOST_KEY_GIVEN and keeps it instead of making one (its content `reload`: sshd runs already,
   a snapshot's, and reloads it). */

export const GUEST_HOST_KEY = '/etc/ssh/ssh_host_ed25519_key';

export interface HostKeyPair {
  privateKey: Buffer;
  publicKey: Buffer;
}

/** A fresh ed25519 key pair from the host's ssh-keygen, made in a private temp dir under `tmpDir` and removed. */
export async function makeHostKey(runner: CommandRunner, tmpDir: string, comment: string): Promise<HostKeyPair> {
  const dir = await mkdtemp(join(tmpDir, 'hostkey-'));
  try {
    const file = join(dir, 'key');
    await runner.check(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
      timeoutMs: 30_000,
    });
    return { privateKey: await readFile(file), publicKey: await readFile(`${file}.pub`) };
  } finally {
    await removeTree(dir);
  }
}

/** Writes the pair into the guest (atomic files: 0600 private, 0644 public) and the marker the gate reads. */
export async function giveHostKey(
  c: Pick<AgentClient, 'putFile'>,
  key: HostKeyPair,
  sshdRunning: boolean,
): Promise<void> {
  await c.putFile(GUEST_HOST_KEY, key.privateKey, { mode: 0o600, uid: 0, gid: 0 });
  await c.putFile(`${GUEST_HOST_KEY}.pub`, key.publicKey, { mode: 0o644, uid: 0, gid: 0 });
  await c.putFile(HOST_KEY_GIVEN, Buffer.from(sshdRunning ? 'reload\n' : 'kept\n'), { mode: 0o600 });
}
