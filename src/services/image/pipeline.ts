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
   * Writes rootfs.ext4 straight from the layer streams (rootfs-writer.ts:
   * tar reader → LayerMerger → Ext4Writer, guest assets included) and the
   * work-seed from the image's /root the same way. No file of the image is
   * created on the host.
   */
  async build(
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
