import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { installInclude, uninstallInclude } from '../../ssh/config.js';
import type { Act, CliContext } from '../context.js';

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(`${path}.banger-tmp`, text, { mode: 0o600 });
  await rename(`${path}.banger-tmp`, path);
}

export function register(program: Command, ctx: () => CliContext, act: Act): void {
  program
    .command('ssh-config')
    .description("print banger's ssh_config path, or include it in ~/.ssh/config so `ssh NAME.vm` works")
    .option('--install', 'add a marked Include block to ~/.ssh/config (idempotent)')
    .option('--uninstall', 'remove exactly that block again')
    .action(
      act(async (o: { install?: boolean; uninstall?: boolean }) => {
        const c = ctx();
        const userConfig = join(c.env.HOME ?? '/root', '.ssh', 'config');
        if (o.install && o.uninstall) return { code: 2, err: 'banger: --install and --uninstall exclude each other\n' };
        if (o.install) {
          const before = await readOptional(userConfig);
          const after = installInclude(before, c.paths.sshConfigFile);
          if (after !== before) await writeAtomic(userConfig, after);
          return {
            text:
              after === before
                ? `already included in ${userConfig}\n`
                : `added an Include of ${c.paths.sshConfigFile} to ${userConfig}\n`,
          };
        }
        if (o.uninstall) {
          const before = await readOptional(userConfig);
          if (before === undefined) return { text: `${userConfig} does not exist; nothing to do\n` };
          const after = uninstallInclude(before);
          if (after === undefined) await rm(userConfig);
          else if (after !== before) await writeAtomic(userConfig, after);
          return {
            text:
              after === before ? `no banger block in ${userConfig}\n` : `removed the banger block from ${userConfig}\n`,
          };
        }
        return { text: `${c.paths.sshConfigFile}\n` };
      }),
    );
}
