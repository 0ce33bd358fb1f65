import { readFile } from 'node:fs/promises';
import type { HostProbe } from '../system/host.js';
import { parseConfig, type Config } from './load.js';

/** Reads config.toml (a missing file means all defaults). */
export async function loadConfigFile(path: string, host: HostProbe): Promise<Config> {
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return parseConfig(text, path, { cpus: host.cpuCount(), memBytes: host.memBytes() });
}
