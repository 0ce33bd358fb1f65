import { randomBytes } from 'node:crypto';
import { appendFile, copyFile, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CommandRunner } from '../../system/runner.js';
import { ensureDir, exists, removeTree } from '../fsutil.js';

/** rename, or copy + remove across filesystems (the key may live outside the state dir). */
async function move(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    await copyFile(from, `${to}.partial`);
    await rename(`${to}.partial`, to);
    await rm(from, { force: true });
  }
}

/** Key types a guest's sshd may present (the host key line of a .pub file). */
const HOST_KEY_TYPES = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
]);

/**
 * `TYPE BASE64` of an sshd host public key file a guest wrote (untrusted): one line, a known
 * type, base64 of at most 4 KiB; the comment is dropped. Anything else is refused (undefined).
 */
export function parseHostPubKey(text: string): string | undefined {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== 1) return undefined;
  const [type, b64] = (lines[0] as string).trim().split(/\s+/);
  if (type === undefined || b64 === undefined || !HOST_KEY_TYPES.has(type)) return undefined;
  if (b64.length > 4096 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined;
  return `${type} ${b64}`;
}

/** banger's own ssh key pair and known_hosts (SPEC §7.5). */
export class SshKeys {
  private making: Promise<void> | undefined;
  private forgetting: Promise<void> = Promise.resolve();

  constructor(
    private readonly runner: CommandRunner,
    readonly keyPath: string,
    readonly knownHosts: string,
    /** Where a new key pair is generated before it is moved into place (state tmp/, swept at startup). */
    private readonly tmpDir: string = dirname(keyPath),
  ) {}

  /**
   * The public key, generating the pair on first use. Concurrent first uses
   * share one ssh-keygen; the pair is made aside and moved in public half
   * first, so the private key's presence means both halves are there, even
   * after a crash.
   */
  async ensureKey(): Promise<string> {
    if (!(await exists(this.keyPath))) {
      this.making ??= this.generate().finally(() => (this.making = undefined));
      await this.making;
    }
    return (await readFile(`${this.keyPath}.pub`, 'utf8')).trim();
  }

  private async generate(): Promise<void> {
    if (await exists(this.keyPath)) return;
    const work = join(this.tmpDir, `ssh-keygen-${randomBytes(6).toString('hex')}`);
    await ensureDir(work, 0o700);
    try {
      const tmpKey = join(work, 'id_ed25519');
      await this.runner.check(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'banger', '-f', tmpKey]);
      await ensureDir(dirname(this.keyPath), 0o700);
      await move(`${tmpKey}.pub`, `${this.keyPath}.pub`);
      await move(tmpKey, this.keyPath);
    } finally {
      await removeTree(work);
    }
  }

  /**
   * Forgets a VM's host key (on delete), so a new VM of the same name is trusted afresh.
   * One at a time: `ssh-keygen -R` rewrites the whole file, so two deletes at once
   * (`vm delete a b`) would each write back the other's entry.
   */
  forget(alias: string): Promise<void> {
    const run = this.forgetting.catch(() => undefined).then(() => this.forgetNow(alias));
    this.forgetting = run;
    return run;
  }

  /**
   * Records a VM's host key under its alias, as ssh's accept-new would at the first connection
   * (the key is read from the guest through its agent, so no ssh login is needed for it). An
   * alias that already has an entry is left alone: a changed key still fails loudly at connect.
   * In the same queue as forget: `ssh-keygen -R` rewrites the file.
   */
  learn(alias: string, key: string): Promise<void> {
    const run = this.forgetting.catch(() => undefined).then(() => this.learnNow(alias, key));
    this.forgetting = run;
    return run;
  }

  private async learnNow(alias: string, key: string): Promise<void> {
    const text = (await exists(this.knownHosts)) ? await readFile(this.knownHosts, 'utf8') : '';
    if (text.split('\n').some((l) => l.split(' ')[0] === alias)) return;
    await ensureDir(dirname(this.knownHosts), 0o700);
    await appendFile(this.knownHosts, `${text === '' || text.endsWith('\n') ? '' : '\n'}${alias} ${key}\n`, {
      mode: 0o600,
    });
  }

  private async forgetNow(alias: string): Promise<void> {
    if (!(await exists(this.knownHosts))) return;
    await this.runner.run(['ssh-keygen', '-R', alias, '-f', this.knownHosts]);
    await rm(`${this.knownHosts}.old`, { force: true });
  }
}
