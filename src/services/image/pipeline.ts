import { readlinkSync } from 'node:fs';
import { badRequest } from '../../errors.js';
import { defaultRootfsBytes } from '../../ext4/mkfs.js';
import { isBuildTimeSecret, MOUNT_POINTS } from '../../guest/assets.js';
import { isImageFile, readImageFile } from '../../imagepull/image-path.js';
import { injectGuestAssets } from './guest-assets.js';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError } from '../../errors.js';
import { ownershipScript } from '../../ext4/debugfs.js';
import { runDebugfs } from '../../ext4/inject.js';
import { mkfsFromTreeArgv, workSeedSpec } from '../../ext4/mkfs.js';
import { Flattener, type EntryMeta } from '../../imagepull/flatten.js';
import { ByteBudget } from '../../archive/byte-budget.js';
import { imageFiles } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { Logger, OpContext } from '../context.js';
import { exists, removeTree, treeBytes } from '../fsutil.js';
import { checkCleanExt4, rootSubtreeLayer } from './bundle-seed.js';
import { meteredLayer } from './layer-progress.js';
import { writeRootfs } from './rootfs-writer.js';

/** One tar stream applied in order (an OCI layer, or mmdebstrap's whole tree). */
export interface LayerInput {
  label: string;
  /** Opens the stream; `finished` resolves once its producer is known to have succeeded. */
  open(): Promise<{ stream: Readable; finished?: Promise<void> }>;
  /**
   * The uncompressed tar bytes the source declares, read without decompressing
   * (a hint to size the image; see rootfs-writer.ts). Without it the stream is
   * spooled to the staging dir first. Every open() must give the same bytes.
   */
  sizeHint?: () => Promise<number | undefined>;
}

export interface RootfsResult {
  sizeBytes: number;
  contentBytes: number;
  workSeed: boolean;
  distro: string;
  hasSshd: boolean;
  hasSystemd: boolean;
}

/** Feeds one layer's tar stream to the Flattener (through `budget` when given); the layer's producer must succeed too. */
async function applyLayer(
  flat: Flattener,
  layer: LayerInput,
  budget?: ByteBudget,
  report?: (message: string) => void,
): Promise<void> {
  const { stream, finished } = await layer.open();
  let input: Readable = report ? meteredLayer(stream, layer.label, report) : stream;
  if (budget !== undefined) {
    const metered = input;
    input = metered.pipe(budget.meter(layer.label));
    metered.on('error', (e: Error) => input.destroy(e));
  }
  await Promise.all([flat.applyLayer(input, layer.label), finished]).catch((e: unknown) => {
    stream.destroy();
    throw e;
  });
}

/** os-release is a few hundred bytes; anything bigger is not read. */
const MAX_OS_RELEASE_BYTES = 64 * 1024;

/** /etc/os-release ID of a flattened image, read through the image's own links (never the host's). */
export async function osReleaseId(
  tree: string,
  meta: ReadonlyMap<string, EntryMeta>,
  readlink: (rel: string) => string,
): Promise<string> {
  for (const p of ['etc/os-release', 'usr/lib/os-release']) {
    const text = (await readImageFile(tree, p, meta, readlink, MAX_OS_RELEASE_BYTES))?.toString('utf8');
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

  /**
   * The rootfs through a host tree: layers flattened into staging, then
   * `mkfs.ext4 -d`, debugfs for ownership and the guest assets. What pulls and
   * builds use until a guest's online resize2fs is shown to grow buildDirect's
   * images (docs/ext4-writer-eval.md, "Unwired again").
   */
  async build(
    staging: string,
    layers: readonly LayerInput[],
    opts: { sizeBytes?: number | undefined },
    ctx: OpContext,
    signal: AbortSignal,
  ): Promise<RootfsResult> {
    const tree = join(staging, 'tree');
    await mkdir(tree, { recursive: true, mode: 0o700 });
    try {
      const flat = new Flattener(tree, { applyOwnership: this.isRoot, skip: isBuildTimeSecret, signal });
      const budget = new ByteBudget(
        this.maxUnpackedBytes,
        'the image content',
        'a bigger image needs a larger max_unpacked_size in config.toml',
      );
      for (const [i, layer] of layers.entries()) {
        ctx.progress({ stage: 'layers', message: `applying ${layer.label}`, current: i, total: layers.length });
        // Bytes and rate while it runs (a build's tar has no known length: no percentage).
        await applyLayer(flat, layer, budget, (message) =>
          ctx.progress({ stage: 'layers', message, current: i, total: layers.length }),
        );
      }
      const { meta, bytes } = flat.result();
      const rootMeta = meta.get('root');
      if (rootMeta !== undefined && rootMeta.type !== 'dir') {
        throw badRequest(
          `the image's /root is a ${rootMeta.type}, not a directory`,
          'VMs mount their work disk at /root; rebuild the image with /root as a plain directory',
        );
      }
      // The tree's symlinks are the image's: resolve them against its root, from the extractor's record.
      const readlink = (rel: string): string => readlinkSync(join(tree, rel));
      const has = (...paths: string[]): boolean => paths.some((p) => isImageFile(p, meta, readlink));
      const hasSshd = has('usr/sbin/sshd', 'sbin/sshd');
      // Without systemd, banger-init stays PID 1 and runs the agent (guest-src/banger-init.c).
      const hasSystemd = has('lib/systemd/systemd', 'usr/lib/systemd/systemd');
      // Mount points banger-init (or systemd) needs and the image lacks; one that is there as a link or file stays as it is.
      const missingDirs = MOUNT_POINTS.filter((d) => !meta.has(d.path.slice(1)));
      const distro = await osReleaseId(tree, meta, readlink);
      const size = opts.sizeBytes ?? defaultRootfsBytes(bytes);
      if (opts.sizeBytes !== undefined && opts.sizeBytes < bytes * 1.05 + 64 * 1048576) {
        throw badRequest(
          `size ${opts.sizeBytes} bytes is too small for ${Math.round(bytes / 1048576)} MiB of files`,
          `use at least ${Math.ceil((bytes * 1.1) / 1048576) + 64}M`,
        );
      }
      ctx.progress({ stage: 'image', message: `writing ext4 (${Math.round(bytes / 1048576)} MiB of files)` });
      const rootfs = join(staging, imageFiles.rootfs);
      await this.runner.check(mkfsFromTreeArgv({ image: rootfs, tree, sizeBytes: size, label: 'rootfs' }), { signal });
      if (!this.isRoot) await runDebugfs(this.runner, rootfs, ownershipScript(meta), signal);
      await injectGuestAssets(this.runner, staging, rootfs, { dirs: missingDirs }, signal);
      const workSeed = await this.buildWorkSeed(staging, tree, meta, signal);
      return { sizeBytes: size, contentBytes: bytes, workSeed, distro, hasSshd, hasSystemd };
    } finally {
      await removeTree(tree);
    }
  }

  /**
   * Writes rootfs.ext4 straight from the layer streams (rootfs-writer.ts:
   * tar reader → LayerMerger → Ext4Writer, guest assets included) and the
   * work-seed from the image's /root the same way. No file of the image is
   * created on the host.
   */
  async buildDirect(
    staging: string,
    layers: readonly LayerInput[],
    opts: { sizeBytes?: number | undefined },
    ctx: OpContext,
    signal: AbortSignal,
  ): Promise<RootfsResult> {
    const rootfs = join(staging, imageFiles.rootfs);
    const now = Math.floor(Date.now() / 1000);
    const r = await writeRootfs(
      layers,
      { image: rootfs, scratch: staging, sizeBytes: opts.sizeBytes, maxUnpackedBytes: this.maxUnpackedBytes, now },
      ctx,
      signal,
    );
    const out = join(staging, imageFiles.workSeed);
    let workSeed = true;
    try {
      await r.seed.write(out, now);
      if (r.seed.outside.length > 0)
        this.log.warn('work-seed: hard links from /root to files outside it are left out', {
          paths: r.seed.outside.slice(0, 5),
        });
    } catch (e) {
      if (e instanceof AppError && e.code === 'cancelled') throw e;
      this.log.warn('work-seed build failed; VMs of this image start with an empty /root', { error: String(e) });
      await removeTree(out);
      workSeed = false;
    }
    const { sizeBytes, contentBytes, distro, hasSshd, hasSystemd } = r;
    return { sizeBytes, contentBytes, workSeed, distro, hasSshd, hasSystemd };
  }

  /**
   * The work-seed of an image that arrived as a finished, untrusted rootfs
   * (bundles): the filesystem must be fsck-clean, its /root is read out by
   * inode (bundle-seed.ts) and flattened like any layer, then written like
   * the work-seed of a pull. Refusals (unclean fs, /root not a directory,
   * duplicate names, sizes) fail the pull; other failures only lose the seed.
   */
  async workSeedFromRootfs(staging: string, rootfs: string, label: string, signal: AbortSignal): Promise<boolean> {
    await checkCleanExt4(this.runner, rootfs, `bundle ${label}: rootfs.ext4`, signal);
    const scratch = join(staging, 'seed-scratch');
    const tree = join(staging, 'seed-tree');
    await mkdir(scratch, { mode: 0o700 });
    await mkdir(tree, { mode: 0o700 });
    try {
      const layer = await rootSubtreeLayer(
        this.runner,
        rootfs,
        scratch,
        `bundle ${label}`,
        { maxBytes: this.maxUnpackedBytes },
        signal,
      );
      const flat = new Flattener(tree, { applyOwnership: this.isRoot, signal });
      if (layer !== undefined) await applyLayer(flat, layer);
      await removeTree(scratch);
      return await this.buildWorkSeed(staging, tree, flat.result().meta, signal);
    } finally {
      await removeTree(scratch);
      await removeTree(tree);
    }
  }

  /** The image's /root as a small ext4 each VM's work disk grows from (non-fatal, SPEC §6.1 step 8). */
  private async buildWorkSeed(
    staging: string,
    tree: string,
    meta: Map<string, EntryMeta>,
    signal: AbortSignal,
  ): Promise<boolean> {
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
      await this.runner.check(
        mkfsFromTreeArgv({ image: out, tree: rootDir, sizeBytes: spec.sizeBytes, label: 'work', inodes: spec.inodes }),
        { signal },
      );
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
