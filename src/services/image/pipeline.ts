import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError, badRequest } from '../../errors.js';
import { ownershipScript, type InjectPlan } from '../../ext4/debugfs.js';
import { injectIntoImage, runDebugfs } from '../../ext4/inject.js';
import { defaultRootfsBytes, mkfsFromTreeArgv, workSeedSpec } from '../../ext4/mkfs.js';
import { firstBootAssets, guestAssets, isBuildTimeSecret } from '../../guest/assets.js';
import { Flattener, type EntryMeta } from '../../imagepull/flatten.js';
import { ByteBudget } from '../../archive/byte-budget.js';
import { imageFiles } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { Logger, OpContext } from '../context.js';
import { exists, removeTree, treeBytes } from '../fsutil.js';

/** One tar stream applied in order (an OCI layer, or mmdebstrap's whole tree). */
export interface LayerInput {
  label: string;
  /** Opens the stream; `finished` resolves once its producer is known to have succeeded. */
  open(): Promise<{ stream: Readable; finished?: Promise<void> }>;
}

export interface RootfsResult {
  sizeBytes: number;
  contentBytes: number;
  workSeed: boolean;
  distro: string;
  hasSshd: boolean;
  hasSystemd: boolean;
}

/** /etc/os-release ID from the staged tree. */
export async function osReleaseId(tree: string): Promise<string> {
  for (const p of ['etc/os-release', 'usr/lib/os-release']) {
    const text = await readFile(join(tree, p), 'utf8').catch(() => undefined);
    const id = text && /^ID="?([^"\n]+)"?$/m.exec(text)?.[1];
    if (id) return id;
  }
  return 'unknown';
}

/**
 * The shared tar → tree → mkfs.ext4 -d → ownership → guest assets → work-seed
 * pipeline (SPEC §6.1 steps 4–8) behind local builds, OCI pulls and more.
 * Writes rootfs.ext4 (and work-seed.ext4) into `staging` and removes the tree.
 */
export class RootfsBuilder {
  constructor(
    private readonly runner: CommandRunner,
    private readonly log: Logger,
    private readonly isRoot: boolean,
    /** Uncompressed tar bytes one build may read, all layers together (config max_unpacked_size). */
    private readonly maxUnpackedBytes: number,
  ) {}

  async build(staging: string, layers: readonly LayerInput[], opts: { sizeBytes?: number | undefined }, ctx: OpContext, signal: AbortSignal): Promise<RootfsResult> {
    const tree = join(staging, 'tree');
    await mkdir(tree, { recursive: true, mode: 0o700 });
    try {
      const flat = new Flattener(tree, { applyOwnership: this.isRoot, skip: isBuildTimeSecret, signal });
      const budget = new ByteBudget(this.maxUnpackedBytes, 'the image content', 'a bigger image needs a larger max_unpacked_size in config.toml');
      for (const [i, layer] of layers.entries()) {
        ctx.progress({ stage: 'layers', message: `applying ${layer.label}`, current: i, total: layers.length });
        const { stream, finished } = await layer.open();
        const metered = stream.pipe(budget.meter(layer.label));
        stream.on('error', (e: Error) => metered.destroy(e));
        await Promise.all([flat.applyLayer(metered, layer.label), finished]).catch((e: unknown) => {
          stream.destroy();
          throw e;
        });
      }
      const { meta, bytes } = flat.result();
      const hasSshd = (await exists(join(tree, 'usr/sbin/sshd'))) || (await exists(join(tree, 'sbin/sshd')));
      const hasSystemd = (await exists(join(tree, 'lib/systemd/systemd'))) || (await exists(join(tree, 'usr/lib/systemd/systemd')));
      if (!hasSystemd) {
        throw badRequest('the image has no systemd (/lib/systemd/systemd)', 'banger boots images with systemd as init; use a systemd-based image (e.g. one built with mmdebstrap)');
      }
      const distro = await osReleaseId(tree);
      const size = opts.sizeBytes ?? defaultRootfsBytes(bytes);
      if (opts.sizeBytes !== undefined && opts.sizeBytes < bytes * 1.05 + 64 * 1048576) {
        throw badRequest(`--size ${opts.sizeBytes} bytes is too small for ${Math.round(bytes / 1048576)} MiB of files`, `use at least ${Math.ceil((bytes * 1.1) / 1048576) + 64}M`);
      }
      ctx.progress({ stage: 'image', message: `writing ext4 (${Math.round(bytes / 1048576)} MiB of files)` });
      const rootfs = join(staging, imageFiles.rootfs);
      await this.runner.check(mkfsFromTreeArgv({ image: rootfs, tree, sizeBytes: size, label: 'rootfs' }), { signal });
      if (!this.isRoot) await runDebugfs(this.runner, rootfs, ownershipScript(meta), signal);
      await this.injectAssets(staging, rootfs, !hasSshd, signal);
      const workSeed = await this.buildWorkSeed(staging, tree, meta, signal);
      return { sizeBytes: size, contentBytes: bytes, workSeed, distro, hasSshd, hasSystemd };
    } finally {
      await removeTree(tree);
    }
  }

  /** Guest assets (and the first-boot sshd installer when the image lacks sshd) in one debugfs pass. */
  private async injectAssets(staging: string, rootfs: string, needsSshd: boolean, signal: AbortSignal): Promise<void> {
    const base = guestAssets();
    const extra = needsSshd ? firstBootAssets() : { files: [], symlinks: [] };
    const dir = join(staging, 'assets');
    await mkdir(dir, { recursive: true });
    const plan: InjectPlan = { files: [], symlinks: [...base.symlinks, ...extra.symlinks] };
    for (const [i, f] of [...base.files, ...extra.files].entries()) {
      const src = join(dir, String(i));
      await writeFile(src, f.content);
      plan.files.push({ path: f.path, hostSource: src, mode: f.mode, uid: 0, gid: 0 });
    }
    await injectIntoImage(this.runner, rootfs, plan, signal);
    await removeTree(dir);
  }

  /** The work-seed of an image that arrived as a finished rootfs (bundles): /root copied out with debugfs rdump. */
  async workSeedFromRootfs(staging: string, rootfs: string, signal: AbortSignal): Promise<boolean> {
    const tree = join(staging, 'seed-tree');
    await mkdir(tree, { recursive: true, mode: 0o700 });
    try {
      const res = await this.runner.run(['debugfs', '-R', `rdump /root ${tree}`, rootfs], { signal });
      if (res.code !== 0 || !(await exists(join(tree, 'root')))) {
        this.log.warn('work-seed build failed: no /root in the image', { stderr: res.stderr.slice(-500) });
        return false;
      }
      const { bytes, files } = await treeBytes(join(tree, 'root'));
      const spec = workSeedSpec(bytes + files * 4096);
      await this.runner.check(mkfsFromTreeArgv({ image: join(staging, imageFiles.workSeed), tree: join(tree, 'root'), sizeBytes: spec.sizeBytes, label: 'work', inodes: spec.inodes }), { signal });
      return true;
    } catch (e) {
      if (e instanceof AppError && e.code === 'cancelled') throw e;
      this.log.warn('work-seed build failed; VMs of this image start with an empty /root', { error: String(e) });
      return false;
    } finally {
      await removeTree(tree);
    }
  }

  /** The image's /root as a small ext4 each VM's work disk grows from (non-fatal, SPEC §6.1 step 8). */
  private async buildWorkSeed(staging: string, tree: string, meta: Map<string, EntryMeta>, signal: AbortSignal): Promise<boolean> {
    const out = join(staging, imageFiles.workSeed);
    try {
      const rootDir = join(tree, 'root');
      if (!(await exists(rootDir))) await mkdir(rootDir, { mode: 0o700 });
      const sub = new Map<string, EntryMeta>();
      for (const [p, m] of meta) {
        if (p.startsWith('root/')) sub.set(p.slice(5), m);
      }
      const { bytes, files } = await treeBytes(rootDir);
      const spec = workSeedSpec(bytes + files * 4096);
      await this.runner.check(mkfsFromTreeArgv({ image: out, tree: rootDir, sizeBytes: spec.sizeBytes, label: 'work', inodes: spec.inodes }), { signal });
      if (!this.isRoot) await runDebugfs(this.runner, out, ownershipScript(sub), signal);
      return true;
    } catch (e) {
      if (e instanceof AppError && e.code === 'cancelled') throw e;
      this.log.warn('work-seed build failed; VMs of this image start with an empty /root', { error: String(e) });
      await removeTree(out);
      return false;
    }
  }
}
