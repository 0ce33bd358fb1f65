import { mkdir, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { BuildImageEntry } from '../../catalog/embedded.js';
import type { CatalogImageEntry } from '../../catalog/images.js';
import { alreadyExists, badRequest, notFound, precondition } from '../../errors.js';
import { isHttpUrl } from '../../config/schema.js';
import { checkDiskSize } from '../../config/sizes.js';
import type { ImageRow } from '../../store/images.js';
import type { Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { Logger, OpContext } from '../context.js';
import { exists, raceAbort, removeTree } from '../fsutil.js';
import { RootfsBuilder } from './pipeline.js';
import { writeBundle } from '../../imagepull/bundle.js';
import type { HttpFetch } from '../../net/transport.js';
import { fetchOciLayers, ociManifestFields } from './oci.js';
import { BlobCache } from '../../imagepull/blobcache.js';
import { deriveImageName, formatReference, isCatalogWord, parseReference } from '../../imagepull/reference.js';
import type { KernelRow } from '../../store/kernels.js';
import { readKernelDir, type KernelFiles } from '../kernel/manifest.js';
import type { ImportParams } from '../kernel/service.js';
import { SingleFlight } from '../singleflight.js';
import { bundleExtras, importsKernel, pullBundle } from './bundle-pull.js';
import { IMAGE_KERNEL_DIR, validateImageName } from './files.js';
import { ImagePublisher, type ImageBuilder, type ImageRows } from './publish.js';
import { mmdebstrapLayer } from './mmdebstrap.js';
import { promoteImage, registerImage, type RegisterParams } from './register.js';
import type { BuildParams, PullParams } from './params.js';
import { checkInstallSshd, type EgressDeps } from './install-sshd.js';
import { ImageRefresher } from './refresh.js';
import { ImageLeases } from './lease.js';

export { IMAGE_KERNEL_DIR, validateImageName } from './files.js';

/** The kernels ImageService needs (services/kernel/service.ts). */
export interface ImageKernels {
  ensure(name: string, ctx: OpContext): Promise<KernelRow>;
  files(name: string): Promise<KernelFiles>;
  bootReady(files: KernelFiles): Promise<KernelFiles>;
  import(p: ImportParams, ctx: OpContext): Promise<KernelRow>;
  delete(name: string): Promise<{ name: string }>;
}

/** What ImageService asks the catalog (catalog/catalog.ts). */
export interface ImageCatalog {
  image(name: string): Promise<CatalogImageEntry | undefined>;
  recipe(name: string): BuildImageEntry | undefined;
  baseRecipe(name: string): BuildImageEntry | undefined;
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
  /** The catalog: build recipes and the catalog file's bundles. */
  catalog: ImageCatalog;
  /** The HTTP transport for bundles and registries (the daemon's, with its proxy settings). */
  http?: HttpFetch | undefined;
  /** `pull --install-sshd`'s egress check: the daemon's proxy settings (tests also pass routing tables). */
  egress?: EgressDeps | undefined;
  /** The rootfs pipeline (tests pass a fake); default: a RootfsBuilder on `runner`. */
  builder?: ImageBuilder | undefined;
}

export type { BuildParams, PullParams } from './params.js';

/** Images: the embedded build recipe today; OCI pulls and bundles join through the same pipeline. */
export class ImageService {
  private readonly flights = new SingleFlight<ImageRow>();
  private readonly builder: ImageBuilder;
  private readonly publisher: ImagePublisher;
  private readonly cache: BlobCache;
  private readonly refresher: ImageRefresher;
  /** Blob digests that running pulls still need (cache prune keeps them). */
  private readonly pinned = new Map<string, number>();

  constructor(
    private readonly paths: Paths,
    private readonly repo: ImageRows,
    private readonly kernels: ImageKernels,
    private readonly runner: CommandRunner,
    private readonly log: Logger,
    private readonly lifetime: AbortSignal,
    private readonly opts: ImageServiceOptions,
  ) {
    this.builder = opts.builder ?? new RootfsBuilder(runner, log, opts.isRoot, opts.maxUnpackedBytes);
    this.publisher = new ImagePublisher(paths, repo, this.builder, log, lifetime);
    this.cache = new BlobCache(paths.blobsDir);
    const leases = new ImageLeases();
    this.refresher = new ImageRefresher({ paths, repo, runner, log, usedBy: opts.usedBy, leases }, lifetime);
  }

  /** `image cache prune`: removes blobs no running pull needs (every finished image is already ext4). */
  async pruneCache(dryRun: boolean): Promise<{ blobs: number; bytes: number; dry_run: boolean }> {
    const res = await this.cache.prune(new Set(this.pinned.keys()), dryRun);
    return { ...res, dry_run: dryRun };
  }

  list(): ImageRow[] {
    return this.repo.list();
  }

  find(nameOrId: string): ImageRow | undefined {
    return this.publisher.find(nameOrId);
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

  /** Runs fn (a VM's root disk made from the image's rootfs) while no refresh swaps it (lease.ts). */
  withRootfs<T>(imageId: string, fn: () => Promise<T>): Promise<T> {
    return this.refresher.withRootfs(imageId, fn);
  }

  /** `image refresh`: the current guest assets go into the image's rootfs (refresh.ts). */
  refresh(nameOrId: string, ctx: OpContext): Promise<ImageRow> {
    return this.refresher.refresh(this.get(nameOrId), ctx);
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
    if (row) return name === this.opts.defaultImage ? this.refresher.auto(row, ctx) : row;
    const shared: OpContext = { ...ctx, signal: this.lifetime };
    return raceAbort(
      this.flights.run(`ensure:${name}`, () => this.ensureNow(name, shared)),
      ctx.signal,
    );
  }

  private async ensureNow(name: string, ctx: OpContext): Promise<ImageRow> {
    const row = this.find(name);
    if (row) return row;
    const entry = this.opts.catalog.recipe(name);
    if (!entry) {
      const bundle = await this.opts.catalog.image(name);
      if (bundle)
        return pullBundle(
          this.bundleDeps(),
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
    if (p.install_sshd) await checkInstallSshd(this.opts.egress ?? { proxy: undefined });
    // Anything with a URL scheme is a bundle URL (an OCI reference never holds '://'); pullBundle refuses other schemes.
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p.ref)) return pullBundle(this.bundleDeps(), p, ctx);
    if (isCatalogWord(p.ref)) {
      const bundle = await this.opts.catalog.image(p.ref);
      if (bundle)
        return pullBundle(
          this.bundleDeps(),
          {
            ...p,
            ref: bundle.url,
            sha256: bundle.sha256,
            name: p.name ?? bundle.name,
            kernel_ref: p.kernel_ref ?? bundle.kernelRef,
          },
          ctx,
        );
      if (this.opts.catalog.recipe(p.ref)) {
        // A catalog build recipe makes the image it names, with its own kernel: flags that would change that are refused, not ignored.
        const ignored = (['name', 'size_bytes', 'kernel_ref', 'kernel', 'initrd', 'modules', 'sha256'] as const).filter(
          (k) => p[k] !== undefined && !(k === 'name' && p.name === p.ref),
        );
        if (ignored.length > 0) {
          const flags = ignored.map((k) => (k === 'size_bytes' ? 'size' : k)).join(', ');
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
    const sizeBytes = p.size_bytes === undefined ? undefined : checkDiskSize(p.size_bytes, 'size');
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
            http: this.opts.http,
            dockerConfigPath: this.paths.dockerConfig,
            signal: this.lifetime,
            onManifest: (d) => pin(d, 1),
          },
          ctx,
        );
        try {
          return await this.publisher.produce(
            {
              name,
              source: `oci:${formatReference(ref)}`,
              kernelName: kernel.name,
              kernelDir: kernel.dir,
              manifest: ociManifestFields(ref, resolved),
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

  private bundleDeps(): Parameters<typeof pullBundle>[0] {
    return {
      paths: this.paths,
      publisher: this.publisher,
      builder: this.builder,
      lifetime: this.lifetime,
      insecureHosts: this.opts.insecureHosts,
      http: this.opts.http,
      resolveKernel: (p, imageName, ctx) => this.resolveKernel(p, imageName, ctx),
      undoKernelImport: (name) => this.undoKernelImport(name),
    };
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
        ...(await bundleExtras(row.dir)),
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
        'initrd and modules need kernel',
        'pass the kernel image with --kernel, or use --kernel-ref NAME',
      );
    return this.kernels.ensure(this.opts.defaultKernel, ctx);
  }

  /** `image register`: an unmanaged image whose rootfs stays where it is on the host. */
  register(p: RegisterParams, ctx: OpContext): Promise<ImageRow> {
    const { paths, repo, publisher, kernels } = this;
    return registerImage({ paths, repo, publisher, kernels, defaultKernel: this.opts.defaultKernel }, p, ctx);
  }

  /** `image promote`: copies a registered image's files into managed storage. */
  async promote(nameOrId: string): Promise<ImageRow> {
    const row = this.get(nameOrId);
    await promoteImage(this.repo, row);
    return this.get(row.id);
  }

  /** `image build NAME --suite --mirror --packages --size`: a local mmdebstrap build through the shared pipeline. */
  async buildCustom(p: BuildParams, ctx: OpContext): Promise<ImageRow> {
    validateImageName(p.name);
    if (this.find(p.name))
      throw alreadyExists(`image "${p.name}" already exists`, `delete it first with \`banger image delete ${p.name}\``);
    const base = this.opts.catalog.baseRecipe(this.opts.defaultImage);
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
    const sizeBytes = p.size_bytes === undefined ? undefined : checkDiskSize(p.size_bytes, 'size');
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
    const layer = mmdebstrapLayer(this.runner, entry, mirror, this.lifetime);
    return this.publisher.produce(
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
}
