import { readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CommandRunner } from '../../system/runner.js';
import { ensureDir, exists } from '../fsutil.js';

/** banger's own ssh key pair and known_hosts (SPEC §7.5). */
export class SshKeys {
  constructor(
    private readonly runner: CommandRunner,
    readonly keyPath: string,
    readonly knownHosts: string,
  ) {}

  async ensureKey(): Promise<string> {
    if (!(await exists(this.keyPath))) {
      await ensureDir(dirname(this.keyPath), 0o700);
      await this.runner.check(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'banger', '-f', this.keyPath]);
    }
    return (await readFile(`${this.keyPath}.pub`, 'utf8')).trim();
  }

  /** Forgets a VM's host key (on delete), so a new VM of the same name is trusted afresh. */
  async forget(alias: string): Promise<void> {
    if (!(await exists(this.knownHosts))) return;
    await this.runner.run(['ssh-keygen', '-R', alias, '-f', this.knownHosts]);
    await rm(`${this.knownHosts}.old`, { force: true });
  }
}
