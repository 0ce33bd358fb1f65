import { stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import type { CommandRunner } from '../../system/runner.js';
import { exists, sha256File } from '../fsutil.js';
import type { KernelFiles } from '../kernel/manifest.js';

/** What a saved guest depends on besides its image: the kernel's files and the qemu build (hashed once per file version). */
export class RestoreFacts {
  private qemuId: Promise<string> | undefined;
  private readonly fileHashes = new Map<string, string>();

  constructor(
    private readonly qemuBin: string,
    private readonly runner: CommandRunner,
  ) {}

  /** The kernel and VMM a guest saved now depends on (snapshot records, snapshot-model.ts). */
  async restoreFacts(k: KernelFiles): Promise<{ kernel: string; vmm: string }> {
    const kernel = [k.manifest.name, await this.hashFile(k.kernel)];
    if (k.initrd) kernel.push(await this.hashFile(k.initrd));
    if (k.modulesDisk) kernel.push(await this.hashFile(k.modulesDisk));
    return { kernel: kernel.join(':'), vmm: await (this.qemuId ??= this.qemuIdentity()) };
  }

  /** `qemu --version` and the binary's hash (an upgrade of the qemu package means other templates). */
  private async qemuIdentity(): Promise<string> {
    const bin = this.qemuBin;
    let path = bin;
    if (!bin.includes('/')) {
      for (const dir of (process.env.PATH ?? '/usr/bin').split(delimiter)) {
        if (dir && (await exists(join(dir, bin)))) {
          path = join(dir, bin);
          break;
        }
      }
    }
    const v = await this.runner.check([path, '--version'], { timeoutMs: 10_000 });
    return `${v.stdout.split('\n')[0] ?? ''}:${await sha256File(path)}`;
  }

  private async hashFile(path: string): Promise<string> {
    const st = await stat(path);
    const id = `${path}:${st.size}:${st.mtimeMs}`;
    let h = this.fileHashes.get(id);
    if (!h) {
      h = await sha256File(path);
      this.fileHashes.set(id, h);
    }
    return h;
  }
}
