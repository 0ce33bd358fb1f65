import { randomBytes } from 'node:crypto';
import { copyFile, readFile, rename, rm } from 'node:fs/promises';
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

  private async forgetNow(alias: string): Promise<void> {
    if (!(await exists(this.knownHosts))) return;
    await this.runner.run(['ssh-keygen', '-R', alias, '-f', this.knownHosts]);
    await rm(`${this.knownHosts}.old`, { force: true });
  }
}
