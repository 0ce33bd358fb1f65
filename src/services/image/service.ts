import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findImageEntry, type BuildImageEntry } from '../../catalog.js';
import { AppError, notFound, operationFailed } from '../../errors.js';
import { ownershipScript, type InjectPlan } from '../../ext4/debugfs.js';
import { injectIntoImage, runDebugfs } from '../../ext4/inject.js';
import { defaultRootfsBytes, mkfsFromTreeArgv, workSeedSpec } from '../../ext4/mkfs.js';
import { ASSETS_VERSION, guestAssets, isBuildTimeSecret } from '../../guest/assets.js';
import { Flattener, type EntryMeta } from '../../imagepull/flatten.js';
import type { ImageRepo, ImageRow } from '../../store/images.js';
import { imageFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { Logger, OpContext } from '../context.js';
import { exists, raceAbort, removeTree, treeBytes } from '../fsutil.js';
import { readKernelDir, type KernelFiles } from '../kernel/manifest.js';
import type { KernelService } from '../kernel/service.js';
import { SingleFlight } from '../singleflight.js';

/** The image's own copy of its kernel (hard links where possible). */
export const IMAGE_KERNEL_DIR = 'kernel';

async function linkTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const f of await readdir(from)) {
    await link(join(from, f), join(to, f)).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EXDEV' && e.code !== 'EPERM') throw e;
      await copyFile(join(from, f), join(to, f));
    });
  }
}

export interface ImageServiceOptions {
  /** Debian mirror for local builds; undefined lets mmdebstrap choose. */
  mirror: string | undefined;
  /** True when the daemon runs as root: ownership is then set while extracting. */
  isRoot: boolean;
}

/** Images: the embedded build recipe today; OCI pulls and bundles join through the same pipeline. */
export class ImageService {
  private readonly flights = new SingleFlight<ImageRow>();

  constructor(
    private readonly paths: Paths,
    private readonly repo: ImageRepo,
    private readonly kernels: KernelService,
    private readonly runner: CommandRunner,
    private readonly log: Logger,
    private readonly lifetime: AbortSignal,
    private readonly opts: ImageServiceOptions,
  ) {}

  list(): ImageRow[] {
    return this.repo.list();
  }

  find(nameOrId: string): ImageRow | undefined {
    return this.repo.byName(nameOrId) ?? this.repo.get(nameOrId);
  }

  /** The named image, built from the catalog recipe on first use. */
  async ensure(name: string, ctx: OpContext): Promise<ImageRow> {
    const row = this.find(name);
    if (row) return row;
    const entry = findImageEntry(name);
    if (!entry) {
      throw notFound(`image "${name}" does not exist and is not in the catalog`, 'run `banger image list` to see local images');
    }
    // Resolve the kernel before the long build, so a missing kernel fails fast.
    const kernel = await this.kernels.ensure(entry.kernel, ctx);
    ctx.progress({ stage: 'image', message: `building image ${name} with mmdebstrap (first use; takes a few minutes)` });
    return raceAbort(this.flights.run(name, () => this.build(entry, kernel.dir, ctx)), ctx.signal);
  }

  /**
   * The kernel an image boots: its own hard-linked copy (so `kernel rm` never
   * breaks it), else the named kernel, pulled on first use.
   */
  async kernelFilesFor(image: ImageRow, ctx: OpContext): Promise<KernelFiles> {
    const own = join(image.dir, IMAGE_KERNEL_DIR);
    if (await exists(join(own, 'manifest.json'))) return readKernelDir(own);
    await this.kernels.ensure(image.kernelName, ctx);
    return this.kernels.files(image.kernelName);
  }

  async cleanStaging(): Promise<void> {
    if (!(await exists(this.paths.imagesDir))) return;
    for (const e of await readdir(this.paths.imagesDir)) {
      if (e.endsWith('.staging')) await removeTree(join(this.paths.imagesDir, e));
    }
  }

  private async build(entry: BuildImageEntry, kernelDir: string, ctx: OpContext): Promise<ImageRow> {
    const id = randomBytes(8).toString('hex');
    const staging = this.paths.imageStaging(id);
    const final = this.paths.imageDir(id);
    const tree = join(staging, 'tree');
    const signal = this.lifetime;
    await mkdir(tree, { recursive: true });
    try {
      const argv = ['mmdebstrap', '--mode=auto', '--variant=apt', `--include=${entry.packages.join(',')}`, '--format=tar', entry.suite, '-'];
      if (this.opts.mirror) argv.push(this.opts.mirror);
      const proc = this.runner.stream(argv, { signal });
      const flat = new Flattener(tree, { applyOwnership: this.opts.isRoot, skip: isBuildTimeSecret, signal });
      const applied = flat.applyLayer(proc.stdout, 'mmdebstrap').catch((e: unknown) => {
        proc.kill();
        throw e;
      });
      const [, res] = await Promise.all([applied, proc.done]);
      if (res.code !== 0) {
        throw operationFailed(`mmdebstrap failed (exit ${res.code}) building ${entry.name}`, {
          detail: res.stderr.trim().split('\n').slice(-10).join('\n'),
          hint: 'check that the Debian mirror is reachable and `banger doctor` passes',
        });
      }
      const { meta, bytes } = flat.result();
      ctx.progress({ stage: 'image', message: `writing ext4 (${Math.round(bytes / 1048576)} MiB of files)` });
      const rootfs = join(staging, imageFiles.rootfs);
      const size = defaultRootfsBytes(bytes);
      await this.runner.check(mkfsFromTreeArgv({ image: rootfs, tree, sizeBytes: size, label: 'rootfs' }), { signal });
      if (!this.opts.isRoot) await runDebugfs(this.runner, rootfs, ownershipScript(meta), signal);
      await this.injectAssets(staging, rootfs, signal);
      const workSeed = await this.buildWorkSeed(staging, tree, meta, signal);
      await linkTree(kernelDir, join(staging, IMAGE_KERNEL_DIR));
      await removeTree(tree);
      await writeFile(
        join(staging, imageFiles.manifest),
        `${JSON.stringify({ name: entry.name, distro: entry.distro, suite: entry.suite, kernel_ref: entry.kernel, assets_version: ASSETS_VERSION, size_bytes: size }, null, 2)}\n`,
      );
      await rename(staging, final);
      const row: ImageRow = {
        id,
        name: entry.name,
        source: `build:${entry.suite}`,
        managed: true,
        dir: final,
        rootfsPath: join(final, imageFiles.rootfs),
        workSeedPath: workSeed ? join(final, imageFiles.workSeed) : undefined,
        kernelName: entry.kernel,
        distro: entry.distro,
        sizeBytes: size,
        assetsVersion: ASSETS_VERSION,
        createdAt: new Date().toISOString(),
      };
      try {
        this.repo.insert(row);
      } catch (e) {
        await removeTree(final);
        throw e;
      }
      this.log.info('image built', { name: row.name, id });
      return row;
    } catch (e) {
      await removeTree(staging);
      throw e;
    }
  }

  /** Bootstrap unit, sshd drop-in and enable link, written in one debugfs pass. */
  private async injectAssets(staging: string, rootfs: string, signal: AbortSignal): Promise<void> {
    const assets = guestAssets();
    const dir = join(staging, 'assets');
    await mkdir(dir, { recursive: true });
    const plan: InjectPlan = { files: [], symlinks: assets.symlinks };
    for (const [i, f] of assets.files.entries()) {
      const src = join(dir, String(i));
      await writeFile(src, f.content);
      plan.files.push({ path: f.path, hostSource: src, mode: f.mode, uid: 0, gid: 0 });
    }
    await injectIntoImage(this.runner, rootfs, plan, signal);
    await removeTree(dir);
  }

  /** The image's /root as a small ext4 each VM's work disk grows from (non-fatal, SPEC §6.1 step 8). */
  private async buildWorkSeed(staging: string, tree: string, meta: Map<string, EntryMeta>, signal: AbortSignal): Promise<boolean> {
    const out = join(staging, imageFiles.workSeed);
    try {
      const rootDir = join(tree, 'root');
      const sub = new Map<string, EntryMeta>();
      for (const [p, m] of meta) {
        if (p.startsWith('root/')) sub.set(p.slice(5), m);
      }
      const { bytes, files } = await treeBytes(rootDir);
      const spec = workSeedSpec(bytes + files * 4096);
      await this.runner.check(mkfsFromTreeArgv({ image: out, tree: rootDir, sizeBytes: spec.sizeBytes, label: 'work', inodes: spec.inodes }), { signal });
      if (!this.opts.isRoot) await runDebugfs(this.runner, out, ownershipScript(sub), signal);
      return true;
    } catch (e) {
      if (e instanceof AppError && e.code === 'cancelled') throw e;
      this.log.warn('work-seed build failed; VMs of this image start with an empty /root', { error: String(e) });
      await removeTree(out);
      return false;
    }
  }

}
