import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, open, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { EMBEDDED_IMAGES, findImageEntry, type BuildImageEntry } from '../../catalog.js';
import { alreadyExists, badRequest, notFound, operationFailed, precondition } from '../../errors.js';
import { isHttpUrl } from '../../config/schema.js';
import { checkDiskSize, parseSize } from '../../config/sizes.js';
import { ASSETS_VERSION } from '../../guest/assets.js';
import type { ImageRepo, ImageRow } from '../../store/images.js';
import { imageFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { Logger, OpContext } from '../context.js';
import { exists, raceAbort, removeTree } from '../fsutil.js';
import { RootfsBuilder, type LayerInput } from './pipeline.js';
import { BUNDLE_ROOTFS, isSha256Hex, readBundle, writeBundle, type BundleManifest } from '../../imagepull/bundle.js';
import { checkUrl, openUrl } from '../../kernel/fetch.js';
import { fetchOciLayers } from './oci.js';
import { BlobCache } from '../../imagepull/blobcache.js';
import { deriveImageName, formatReference, isCatalogWord, parseReference } from '../../imagepull/reference.js';
import type { KernelRow } from '../../store/kernels.js';
import { readKernelDir, type KernelFiles } from '../kernel/manifest.js';
import type { KernelService } from '../kernel/service.js';
import { SingleFlight } from '../singleflight.js';

/** The image's own copy of its kernel (hard links where possible). */
export const IMAGE_KERNEL_DIR = 'kernel';

/** ext4 superblock magic 0xEF53 at byte 1080. */
async function assertExt4(path: string, flag: string): Promise<void> {
  const fh = await open(path, 'r').catch(() => {
    throw notFound(`${flag} ${path} does not exist`);
  });
  try {
    const b = Buffer.alloc(2);
    await fh.read(b, 0, 2, 1080);
    if (b.readUInt16LE(0) !== 0xef53)
      throw badRequest(
        `${flag} ${path} is not an ext4 filesystem image`,
        'pass a raw ext4 image file (e.g. made with mkfs.ext4 -d)',
      );
  } finally {
    await fh.close();
  }
}

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
  /** config default_image_name: the recipe `image build` starts from. */
  defaultImage: string;
  /** Names of the VMs using an image (deleting it is refused while any exist). */
  usedBy: (imageId: string) => string[];
  /** config default_kernel_name: the kernel of pulled images without --kernel-ref. */
  defaultKernel: string;
  /** config insecure_registries. */
  insecureHosts: readonly string[];
  /** config max_unpacked_size, in bytes. */
  maxUnpackedBytes: number;
}

export interface PullParams {
  ref: string;
  name?: string | undefined;
  kernel_ref?: string | undefined;
  kernel?: string | undefined;
  initrd?: string | undefined;
  modules?: string | undefined;
  size?: string | undefined;
  sha256?: string | undefined;
}

export interface BuildParams {
  name: string;
  suite?: string | undefined;
  mirror?: string | undefined;
  packages?: string[] | undefined;
  size?: string | undefined;
}

/** Image names: like VM names plus '.' and '_' (derived OCI names use them). */
export function validateImageName(name: string): void {
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(name)) {
    const bad = [...name].findIndex((ch) => !/[a-z0-9._-]/.test(ch));
    throw badRequest(
      `invalid image name ${JSON.stringify(name)}${bad >= 0 ? `: character ${JSON.stringify(name[bad])} at position ${bad + 1} is not allowed` : ''}`,
      'image names are 1-63 characters of a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
    );
  }
}

/** True when a pull imports its own kernel from --kernel files (rather than naming one with --kernel-ref). */
const importsKernel = (p: PullParams): boolean => p.kernel !== undefined && p.kernel_ref === undefined;

/** Images: the embedded build recipe today; OCI pulls and bundles join through the same pipeline. */
export class ImageService {
  private readonly flights = new SingleFlight<ImageRow>();
  private readonly builder: RootfsBuilder;
  private readonly cache: BlobCache;
  /** Blob digests that running pulls still need (cache prune keeps them). */
  private readonly pinned = new Map<string, number>();

  constructor(
    private readonly paths: Paths,
    private readonly repo: ImageRepo,
    private readonly kernels: KernelService,
    private readonly runner: CommandRunner,
    private readonly log: Logger,
    private readonly lifetime: AbortSignal,
    private readonly opts: ImageServiceOptions,
  ) {
    this.builder = new RootfsBuilder(runner, log, opts.isRoot, opts.maxUnpackedBytes);
    this.cache = new BlobCache(paths.blobsDir);
  }

  /** A private staging dir under state/tmp/, and the images dir it is renamed into when done. */
  private async newStaging(id: string): Promise<string> {
    const staging = this.paths.imageStaging(id);
    await mkdir(this.paths.imagesDir, { recursive: true });
    await mkdir(staging, { recursive: true, mode: 0o700 });
    return staging;
  }

  /** `image cache prune`: removes blobs no running pull needs (every finished image is already ext4). */
  async pruneCache(dryRun: boolean): Promise<{ blobs: number; bytes: number; dry_run: boolean }> {
    const res = await this.cache.prune(new Set(this.pinned.keys()), dryRun);
    return { ...res, dry_run: dryRun };
  }

  private get defaultImage(): string {
    return this.opts.defaultImage;
  }

  list(): ImageRow[] {
    return this.repo.list();
  }

  find(nameOrId: string): ImageRow | undefined {
    return this.repo.byName(nameOrId) ?? this.repo.get(nameOrId);
  }

  get(nameOrId: string): ImageRow {
    const row = this.find(nameOrId);
    if (!row) throw notFound(`no image named "${nameOrId}"`, 'run `banger image list` to see local images');
    return row;
  }

  /** Removes an image and its files; refused while VMs use it (their disks are overlays of it). */
  async delete(nameOrId: string): Promise<{ name: string }> {
    const row = this.get(nameOrId);
    const users = this.opts.usedBy(row.id);
    if (users.length > 0) {
      throw precondition(
        `image "${row.name}" is used by VM${users.length > 1 ? 's' : ''} ${users.join(', ')}`,
        `delete ${users.length > 1 ? 'them' : 'it'} first with \`banger vm delete ${users.join(' ')}\``,
      );
    }
    this.repo.delete(row.id);
    if (row.managed) await removeTree(row.dir);
    this.log.info('image deleted', { name: row.name });
    return { name: row.name };
  }

  /**
   * The named image, built from the catalog recipe (or fetched from the
   * catalog file's bundle) on first use. One such first use per name at a
   * time: callers share it, and the row check inside the flight catches one
   * that arrives just after it finished. It runs on the daemon's lifetime, so
   * the first caller going away does not fail the others.
   */
  async ensure(name: string, ctx: OpContext): Promise<ImageRow> {
    const row = this.find(name);
    if (row) return row;
    const shared: OpContext = { ...ctx, signal: this.lifetime };
    return raceAbort(
      this.flights.run(`ensure:${name}`, () => this.ensureNow(name, shared)),
      ctx.signal,
    );
  }

  private async ensureNow(name: string, ctx: OpContext): Promise<ImageRow> {
    const row = this.find(name);
    if (row) return row;
    const entry = findImageEntry(name);
    if (!entry) {
      const bundle = (await this.kernels.catalogImages()).find((e) => e.name === name);
      if (bundle)
        return this.pullBundle(
          { ref: bundle.url, sha256: bundle.sha256, name: bundle.name, kernel_ref: bundle.kernelRef },
          ctx,
        );
      throw notFound(
        `image "${name}" does not exist and is not in the catalog`,
        'run `banger image list` to see local images',
      );
    }
    // Resolve the kernel before the long build, so a missing kernel fails fast.
    const kernel = await this.kernels.ensure(entry.kernel, ctx);
    ctx.progress({
      stage: 'image',
      message: `building image ${name} with mmdebstrap (first use; takes a few minutes)`,
    });
    return this.flights.run(name, () => this.build(entry, kernel.dir, ctx));
  }

  /**
   * The kernel an image boots: its own hard-linked copy (so `kernel rm` never
   * breaks it), else the named kernel, pulled on first use.
   */
  async kernelFilesFor(image: ImageRow, ctx: OpContext): Promise<KernelFiles> {
    const own = join(image.dir, IMAGE_KERNEL_DIR);
    if (await exists(join(own, 'manifest.json'))) return this.kernels.bootReady(await readKernelDir(own));
    await this.kernels.ensure(image.kernelName, ctx);
    return this.kernels.bootReady(await this.kernels.files(image.kernelName));
  }

  /**
   * `image pull`: a catalog word builds or fetches the catalog entry; anything
   * with '/', ':' or '@' is an OCI reference (SPEC §6.1).
   */
  async pull(p: PullParams, ctx: OpContext): Promise<ImageRow> {
    // Anything with a URL scheme is a bundle URL (an OCI reference never holds '://'); pullBundle refuses other schemes.
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p.ref)) return this.pullBundle(p, ctx);
    if (isCatalogWord(p.ref)) {
      const bundle = (await this.kernels.catalogImages()).find((e) => e.name === p.ref);
      if (bundle)
        return this.pullBundle(
          {
            ...p,
            ref: bundle.url,
            sha256: bundle.sha256,
            name: p.name ?? bundle.name,
            kernel_ref: p.kernel_ref ?? bundle.kernelRef,
          },
          ctx,
        );
      if (findImageEntry(p.ref)) {
        // A catalog build recipe makes the image it names, with its own kernel: flags that would change that are refused, not ignored.
        const ignored = (['name', 'size', 'kernel_ref', 'kernel', 'initrd', 'modules', 'sha256'] as const).filter(
          (k) => p[k] !== undefined && !(k === 'name' && p.name === p.ref),
        );
        if (ignored.length > 0) {
          const flags = ignored.map((k) => `--${k.replace('_', '-')}`).join(', ');
          throw badRequest(
            `${flags} cannot be used when pulling the catalog image "${p.ref}" (it is built from its recipe)`,
            `to build a variant under another name or size, use \`banger image build NAME --size SIZE\``,
          );
        }
        if (this.find(p.ref))
          throw alreadyExists(
            `image "${p.ref}" already exists`,
            `delete it first with \`banger image delete ${p.ref}\``,
          );
        return this.ensure(p.ref, ctx);
      }
    }
    return this.pullOci(p, ctx);
  }

  private async pullOci(p: PullParams, ctx: OpContext): Promise<ImageRow> {
    const ref = parseReference(p.ref);
    const name = p.name ?? deriveImageName(ref);
    validateImageName(name);
    if (this.find(name))
      throw alreadyExists(
        `image "${name}" already exists`,
        'pass --name to pull it under another name, or delete the existing one',
      );
    const sizeBytes = p.size === undefined ? undefined : checkDiskSize(parseSize(p.size, '--size'), '--size');
    // Step 2: the kernel is resolved before anything is downloaded.
    const kernel = await this.resolveKernel(p, name, ctx);
    // Concurrent pulls share one flight only when everything that shapes the image is the same.
    const key = JSON.stringify(['oci', formatReference(ref), name, sizeBytes ?? null, kernel.name]);
    const pulled = raceAbort(
      this.flights.run(key, async () => {
        ctx.progress({ stage: 'image', message: `resolving ${formatReference(ref)}` });
        await mkdir(this.paths.blobsDir, { recursive: true });
        const pin = (digests: string[], by: number): void => {
          for (const d of digests) {
            const n = (this.pinned.get(d) ?? 0) + by;
            if (n > 0) this.pinned.set(d, n);
            else this.pinned.delete(d);
          }
        };
        const { resolved, layers } = await fetchOciLayers(
          ref,
          this.cache,
          {
            insecureHosts: this.opts.insecureHosts,
            dockerConfigPath: this.paths.dockerConfig,
            signal: this.lifetime,
            onManifest: (d) => pin(d, 1),
          },
          ctx,
        );
        try {
          return await this.produce(
            {
              name,
              source: `oci:${formatReference(ref)}`,
              kernelName: kernel.name,
              kernelDir: kernel.dir,
              manifest: {
                ref: formatReference(ref),
                manifest_digest: resolved.manifestDigest,
                config_digest: resolved.configDigest,
              },
            },
            layers,
            sizeBytes,
            ctx,
          );
        } finally {
          pin(
            resolved.manifest.layers.map((l) => l.digest),
            -1,
          );
        }
      }),
      ctx.signal,
    );
    if (!importsKernel(p)) return pulled;
    return pulled.catch(async (e: unknown) => {
      await this.undoKernelImport(kernel.name);
      throw e;
    });
  }

  /** A kernel that `--kernel` files imported for a pull that then failed is removed again (it has no other user yet). */
  private async undoKernelImport(name: string | undefined): Promise<void> {
    if (name === undefined) return;
    await this.kernels
      .delete(name)
      .catch((err: unknown) =>
        this.log.warn('could not remove the kernel imported for a failed pull', { name, error: String(err) }),
      );
  }

  /** SPEC §6.2: a bundle (rootfs.ext4 + manifest.json in a sha256-pinned tar.zst) from https:// or file://. */
  private async pullBundle(p: PullParams, ctx: OpContext): Promise<ImageRow> {
    // Everything the request alone decides is checked before a connection is made or a file opened.
    const url = checkUrl(p.ref, { insecureHosts: this.opts.insecureHosts });
    if (!p.sha256)
      throw badRequest(
        'pulling a bundle needs --sha256',
        'the publisher of the bundle gives its sha256 (banger image export prints it)',
      );
    if (!isSha256Hex(p.sha256))
      throw badRequest(
        `invalid --sha256 ${JSON.stringify(p.sha256)}: a sha256 is 64 hexadecimal digits`,
        'banger image export prints the sha256 of a bundle',
      );
    if (p.size !== undefined)
      throw badRequest(
        `--size ${p.size} does not apply to a bundle: its rootfs keeps the size it was exported with`,
        'leave out --size',
      );
    if (!p.kernel && (p.initrd || p.modules))
      throw badRequest(
        '--initrd and --modules need --kernel',
        'pass the kernel image with --kernel, or use --kernel-ref NAME',
      );
    if (p.name !== undefined) this.checkNewName(p.name);
    const id = randomBytes(8).toString('hex');
    const staging = await this.newStaging(id);
    let imported: string | undefined;
    try {
      ctx.progress({ stage: 'download', message: `fetching ${p.ref}` });
      const { stream } = await openUrl(url, this.lifetime);
      const unpack = join(staging, 'bundle');
      await mkdir(unpack);
      // The name from the manifest is checked as soon as the manifest arrives (first in an exported bundle),
      // not after the rootfs downloaded; and again at the end, for a manifest that came last.
      const checkDerived = (m: BundleManifest): void => {
        if (p.name === undefined) this.checkNewName(m.name);
      };
      const { manifest } = await raceAbort(
        readBundle(stream, unpack, p.sha256, p.ref, this.lifetime, checkDerived),
        ctx.signal,
      );
      const name = p.name ?? manifest.name;
      this.checkNewName(name);
      // Explicit --kernel files beat the manifest's kernel_ref (SPEC §6.1 step 2).
      const kernel = await this.resolveKernel(
        { ...p, kernel_ref: p.kernel_ref ?? (p.kernel ? undefined : manifest.kernel_ref) },
        name,
        ctx,
      );
      if (importsKernel(p)) imported = kernel.name;
      const rootfs = join(staging, imageFiles.rootfs);
      await rename(join(unpack, BUNDLE_ROOTFS), rootfs);
      await removeTree(unpack);
      ctx.progress({ stage: 'image', message: 'building the work-seed' });
      const workSeed = await this.builder.workSeedFromRootfs(staging, rootfs, p.ref, this.lifetime);
      await linkTree(kernel.dir, join(staging, IMAGE_KERNEL_DIR));
      await writeFile(
        join(staging, imageFiles.manifest),
        `${JSON.stringify({ ...manifest, name, source: p.ref, sha256: p.sha256 }, null, 2)}\n`,
      );
      const final = this.paths.imageDir(id);
      await rename(staging, final);
      const row: ImageRow = {
        id,
        name,
        source: `bundle:${p.ref}`,
        managed: true,
        dir: final,
        rootfsPath: join(final, imageFiles.rootfs),
        workSeedPath: workSeed ? join(final, imageFiles.workSeed) : undefined,
        kernelName: kernel.name,
        distro: manifest.distro,
        sizeBytes: manifest.rootfs_bytes,
        assetsVersion: manifest.assets_version,
        createdAt: new Date().toISOString(),
      };
      await this.insertPublished(row);
      return row;
    } catch (e) {
      await removeTree(staging);
      await this.undoKernelImport(imported);
      throw e;
    }
  }

  /** The row of a published image dir; when that fails the dir goes too, and a name another pull took meanwhile is already_exists. */
  private async insertPublished(row: ImageRow): Promise<void> {
    try {
      this.repo.insert(row);
    } catch (e) {
      await removeTree(row.dir);
      // Another pull or build of this name published first (they ran concurrently).
      if (String(e).includes('UNIQUE'))
        throw alreadyExists(`image "${row.name}" already exists`, 'pass --name to choose another name');
      throw e;
    }
  }

  /** A name for a new image: valid, and not taken (the hint says how to pick another). */
  private checkNewName(name: string): void {
    validateImageName(name);
    if (this.find(name))
      throw alreadyExists(
        `image "${name}" already exists`,
        'pass --name to pull it under another name, or delete the existing one',
      );
  }

  /** `image export NAME -o FILE`: the bundle format of SPEC §6.2. */
  async export(
    nameOrId: string,
    out: string,
    _ctx: OpContext,
  ): Promise<{ name: string; path: string; sha256: string; bytes: number }> {
    const row = this.get(nameOrId);
    if (!isAbsolute(out)) throw badRequest(`-o must be an absolute path: ${out}`);
    const rootfsBytes = (await stat(row.rootfsPath)).size;
    const res = await writeBundle(
      row.rootfsPath,
      {
        format: 1,
        name: row.name,
        distro: row.distro,
        arch: 'x86_64',
        kernel_ref: row.kernelName,
        rootfs_bytes: rootfsBytes,
        assets_version: row.assetsVersion,
        created_at: row.createdAt,
      },
      out,
      this.lifetime,
    );
    return { name: row.name, path: out, ...res };
  }

  /** SPEC §6.1 step 2: --kernel-ref > explicit --kernel paths > default_kernel_name. */
  private async resolveKernel(p: PullParams, imageName: string, ctx: OpContext): Promise<KernelRow> {
    if (p.kernel_ref) return this.kernels.ensure(p.kernel_ref, ctx);
    if (p.kernel) {
      const name = `${imageName}-kernel`;
      return this.kernels.import({ name, kernel: p.kernel, initrd: p.initrd, modules: p.modules }, ctx);
    }
    if (p.initrd || p.modules)
      throw badRequest(
        '--initrd and --modules need --kernel',
        'pass the kernel image with --kernel, or use --kernel-ref NAME',
      );
    return this.kernels.ensure(this.opts.defaultKernel, ctx);
  }

  /** `image register`: an unmanaged image whose rootfs stays where it is on the host. */
  async register(
    p: { name: string; rootfs: string; kernel_ref?: string | undefined; work_seed?: string | undefined },
    ctx: OpContext,
  ): Promise<ImageRow> {
    validateImageName(p.name);
    if (this.find(p.name)) throw alreadyExists(`image "${p.name}" already exists`, 'pick another name');
    if (!isAbsolute(p.rootfs)) throw badRequest(`--rootfs must be an absolute path: ${p.rootfs}`);
    await assertExt4(p.rootfs, '--rootfs');
    if (p.work_seed) await assertExt4(p.work_seed, '--work-seed');
    const kernel = await this.kernels.ensure(p.kernel_ref ?? this.opts.defaultKernel, ctx);
    const id = randomBytes(8).toString('hex');
    const staging = await this.newStaging(id);
    const final = this.paths.imageDir(id);
    try {
      await linkTree(kernel.dir, join(staging, IMAGE_KERNEL_DIR));
      await rename(staging, final);
    } catch (e) {
      await removeTree(staging);
      throw e;
    }
    const size = (await stat(p.rootfs)).size;
    const row: ImageRow = {
      id,
      name: p.name,
      source: `register:${p.rootfs}`,
      managed: false,
      dir: final,
      rootfsPath: p.rootfs,
      workSeedPath: p.work_seed,
      kernelName: kernel.name,
      distro: 'unknown',
      sizeBytes: size,
      assetsVersion: 0,
      createdAt: new Date().toISOString(),
    };
    this.repo.insert(row);
    return row;
  }

  /** `image promote`: copies a registered image's files into managed storage. */
  async promote(nameOrId: string): Promise<ImageRow> {
    const row = this.get(nameOrId);
    if (row.managed) throw precondition(`image "${row.name}" is already managed`);
    const rootfs = join(row.dir, imageFiles.rootfs);
    await copyFile(row.rootfsPath, `${rootfs}.partial`);
    await rename(`${rootfs}.partial`, rootfs);
    let workSeed: string | undefined;
    if (row.workSeedPath) {
      workSeed = join(row.dir, imageFiles.workSeed);
      await copyFile(row.workSeedPath, workSeed);
    }
    this.repo.setFiles(row.id, {
      managed: true,
      rootfsPath: rootfs,
      workSeedPath: workSeed,
      source: `promoted:${row.source}`,
    });
    return this.get(row.id);
  }

  /** `image build NAME --suite --mirror --packages --size`: a local mmdebstrap build through the shared pipeline. */
  async buildCustom(p: BuildParams, ctx: OpContext): Promise<ImageRow> {
    validateImageName(p.name);
    if (this.find(p.name))
      throw alreadyExists(`image "${p.name}" already exists`, `delete it first with \`banger image delete ${p.name}\``);
    const base = findImageEntry(this.defaultImage) ?? EMBEDDED_IMAGES[0];
    if (!base) throw notFound('no build recipe in the catalog');
    const extra = (p.packages ?? []).filter((x) => x.length > 0);
    for (const pkg of extra)
      if (!/^[a-z0-9][a-z0-9+.-]*$/.test(pkg))
        throw badRequest(`invalid package name "${pkg}"`, 'Debian package names use a-z, 0-9, +, - and .');
    if (p.suite !== undefined && !/^[a-z][a-z0-9-]*$/.test(p.suite))
      throw badRequest(`invalid --suite "${p.suite}"`, 'e.g. --suite bookworm');
    if (p.mirror !== undefined && !isHttpUrl(p.mirror))
      throw badRequest(
        `invalid --mirror ${JSON.stringify(p.mirror)}: expected an http(s) URL`,
        'e.g. --mirror http://deb.debian.org/debian',
      );
    const entry: BuildImageEntry = {
      ...base,
      name: p.name,
      suite: p.suite ?? base.suite,
      packages: [...base.packages, ...extra],
    };
    const sizeBytes = p.size === undefined ? undefined : checkDiskSize(parseSize(p.size, '--size'), '--size');
    const kernel = await this.kernels.ensure(entry.kernel, ctx);
    ctx.progress({ stage: 'image', message: `building image ${p.name} with mmdebstrap` });
    return raceAbort(
      this.flights.run(p.name, () =>
        this.build(entry, kernel.dir, ctx, { mirror: p.mirror ?? this.opts.mirror, sizeBytes }),
      ),
      ctx.signal,
    );
  }

  private build(
    entry: BuildImageEntry,
    kernelDir: string,
    ctx: OpContext,
    o: { mirror?: string | undefined; sizeBytes?: number | undefined } = {},
  ): Promise<ImageRow> {
    const mirror = o.mirror ?? this.opts.mirror;
    const layer: LayerInput = {
      label: 'mmdebstrap',
      open: async () => {
        const argv = [
          'mmdebstrap',
          '--mode=auto',
          '--variant=apt',
          `--include=${entry.packages.join(',')}`,
          '--format=tar',
          entry.suite,
          '-',
        ];
        if (mirror) argv.push(mirror);
        const proc = this.runner.stream(argv, { signal: this.lifetime });
        const finished = proc.done.then((res) => {
          if (res.code !== 0) {
            throw operationFailed(`mmdebstrap failed (exit ${res.code}) building ${entry.name}`, {
              detail: res.stderr.trim().split('\n').slice(-10).join('\n'),
              hint: `check that the Debian mirror is reachable and \`banger doctor\` passes; mmdebstrap said:\n${res.stderr.trim().split('\n').slice(-3).join('\n')}`,
            });
          }
        });
        return { stream: proc.stdout, finished };
      },
    };
    return this.produce(
      {
        name: entry.name,
        source: `build:${entry.suite}`,
        kernelName: entry.kernel,
        kernelDir,
        manifest: { suite: entry.suite, packages: entry.packages },
      },
      [layer],
      o.sizeBytes,
      ctx,
    );
  }

  /**
   * Staging → shared rootfs pipeline → the image's own kernel links →
   * manifest → atomic rename → row. Any failure removes the staging dir, so
   * nothing half-built is ever listed (SPEC §6.1 step 9).
   */
  private async produce(
    what: { name: string; source: string; kernelName: string; kernelDir: string; manifest: Record<string, unknown> },
    layers: readonly LayerInput[],
    sizeBytes: number | undefined,
    ctx: OpContext,
  ): Promise<ImageRow> {
    const id = randomBytes(8).toString('hex');
    const staging = await this.newStaging(id);
    const final = this.paths.imageDir(id);
    try {
      const built = await this.builder.build(staging, layers, { sizeBytes }, ctx, this.lifetime);
      await linkTree(what.kernelDir, join(staging, IMAGE_KERNEL_DIR));
      await writeFile(
        join(staging, imageFiles.manifest),
        `${JSON.stringify({ name: what.name, distro: built.distro, arch: 'x86_64', kernel_ref: what.kernelName, source: what.source, assets_version: ASSETS_VERSION, rootfs_bytes: built.sizeBytes, has_sshd: built.hasSshd, has_systemd: built.hasSystemd, ...what.manifest }, null, 2)}\n`,
      );
      if (this.find(what.name))
        throw alreadyExists(`image "${what.name}" already exists`, 'pass --name to choose another name');
      await rename(staging, final);
      const row: ImageRow = {
        id,
        name: what.name,
        source: what.source,
        managed: true,
        dir: final,
        rootfsPath: join(final, imageFiles.rootfs),
        workSeedPath: built.workSeed ? join(final, imageFiles.workSeed) : undefined,
        kernelName: what.kernelName,
        distro: built.distro,
        sizeBytes: built.sizeBytes,
        assetsVersion: ASSETS_VERSION,
        createdAt: new Date().toISOString(),
      };
      await this.insertPublished(row);
      this.log.info('image published', { name: row.name, id, source: row.source });
      return row;
    } catch (e) {
      await removeTree(staging);
      throw e;
    }
  }
}
