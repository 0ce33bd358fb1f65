import { readFile } from 'node:fs/promises';
import { badRequest } from '../errors.js';
import type { HostProbe } from '../system/host.js';
import { parseConfig, type Config } from './config.js';

/** Reads config.toml from disk and parses it (config.ts); a missing file means all defaults. */
export async function loadConfigFile(path: string, host: HostProbe): Promise<Config> {
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT')
      throw badRequest(
        `cannot read ${path}: ${code ?? (e as Error).message}`,
        'config.toml must be a readable file (or absent for all defaults)',
      );
  }
  return parseConfig(text, path, { cpus: host.cpuCount(), memBytes: host.memBytes() });
}
