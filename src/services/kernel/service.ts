import { randomBytes } from 'node:crypto';
import { readdir, rename, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { KernelCatalogView } from '../../api/methods.js';
import type { DistroKernelEntry } from '../../catalog/embedded.js';
import { validateKernelName, type KernelCatalogEntry, type TarballKernelEntry } from '../../catalog/kernels.js';
import { AppError, alreadyExists, badRequest, notFound, operationFailed } from '../../errors.js';
import { kernelReleaseFromVmlinuz, parseAptDepends } from '../../kernel/apt.js';
import { checkUrl, openUrl, type FetchPolicy } from '../../net/download.js';
import type { HttpFetch } from '../../net/transport.js';
import { extractKernelTarball } from '../../kernel/tarball.js';
import type { KernelRow } from '../../store/kernels.js';
import type { Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import { downloadProgress, type Logger, type OpContext } from '../context.js';
import { ensureDir, exists, raceAbort, removeTree } from '../fsutil.js';
import { SingleFlight } from '../singleflight.js';
import { assembleKernel, type KernelSource } from './assemble.js';
import { initramfsStale, refreshInitramfs } from './initramfs-refresh.js';
import { readKernelDir, rowFromManifest, type KernelFiles } from './manifest.js';

/** The kernel rows KernelService reads and writes (store/kernels.ts). */
export interface KernelRows {
  list(): KernelRow[];
  get(name: string): KernelRow | undefined;
  insert(row: KernelRow): void;
  delete(name: string): void;
}

/** What KernelService asks the catalog (catalog/catalog.ts). */
export interface KernelCatalog {
  kernels(): Promise<KernelCatalogEntry[]>;
  kernel(name: string): Promise<KernelCatalogEntry | undefined>;
}

export interface KernelServiceOptions {
  /** The catalog (embedded entries merged with config `catalog`). */
  catalog: KernelCatalog;
  fetchPolicy: FetchPolicy;
  /** The HTTP transport for tarball downloads (the daemon's, with its proxy settings). */
  http?: HttpFetch | undefined;
}

export interface ImportParams {
  name: string;
  kernel?: string | undefined;
  initrd?: string | undefined;
  modules?: string | undefined;
  from?: string | undefined;
}

/**
 * Kernels under kernels/<name>/: the catalog's distribution kernel pulled
 * through the host's apt, sha256-pinned tarballs, and imports. Building from
 * source (`kernel build`) would be one more KernelSource producer.
 */
export class KernelService {
  private readonly flights = new SingleFlight<KernelRow>();
  private readonly refreshes = new SingleFlight<KernelFiles>();

  constructor(
    private readonly paths: Paths,
    private readonly repo: KernelRows,
    private readonly runner: CommandRunner,
    private readonly log: Logger,
    /** Lives as long as the daemon: pulls finish even when the asking client goes away. */
    private readonly lifetime: AbortSignal,
    private readonly opts: KernelServiceOptions,
  ) {}

  list(): KernelRow[] {
    return this.repo.list();
  }

  get(name: string): KernelRow {
    const row = this.repo.get(name);
    if (!row)
      throw notFound(
        `kernel "${name}" is not installed`,
        'run `banger kernel list --available` to see what can be pulled',
      );
    return row;
  }

  async files(name: string): Promise<KernelFiles> {
    return readKernelDir(this.get(name).dir);
  }

  /**
   * The kernel files ready to boot with this banger: an initramfs made by an older
   * banger is regenerated first (initramfs-refresh.ts), once per dir at a time.
   */
  bootReady(files: KernelFiles): Promise<KernelFiles> {
    if (!initramfsStale(files.manifest)) return Promise.resolve(files);
    return this.refreshes.run(files.dir, async () => {
      // Re-read inside the flight: one that just finished has already refreshed this dir.
      const now = await readKernelDir(files.dir);
      if (!initramfsStale(now.manifest)) return now;
      this.log.info('regenerating an older initramfs', { dir: files.dir, kernel: now.manifest.name });
      const scratch = this.paths.kernelWork(now.manifest.name, randomBytes(6).toString('hex'));
      return refreshInitramfs(now, scratch, this.runner, this.lifetime);
    });
  }

  async catalog(): Promise<KernelCatalogView[]> {
    return (await this.opts.catalog.kernels()).map((e) => {
      const row = this.repo.get(e.name);
      return {
        name: e.name,
        kind: e.kind,
        distro: e.distro,
        version: row?.version ?? (e.kind === 'tarball' ? e.version : 'latest from apt'),
        size: e.kind === 'tarball' ? (e.size ?? null) : null,
        state: row ? 'pulled' : 'available',
      };
    });
  }

  /** The named kernel, pulled from the catalog on first use. */
  async ensure(name: string, ctx: OpContext): Promise<KernelRow> {
    const row = this.repo.get(name);
    if (row) return row;
    ctx.progress({ stage: 'kernel', message: `pulling kernel ${name} (first use)` });
    validateKernelName(name);
    return this.fetchOnce(name, false, ctx);
  }

  async pull(name: string, force: boolean, ctx: OpContext): Promise<KernelRow> {
    validateKernelName(name);
    if (!force && this.repo.get(name)) {
      throw alreadyExists(
        `kernel "${name}" is already pulled`,
        `pass --force to pull it again, or \`banger kernel rm ${name}\` first`,
      );
    }
    return this.fetchOnce(name, force, ctx);
  }

  /**
   * One download per kernel name at a time: callers that arrive while it runs
   * share it, and one that arrives just after it finished finds the row (the
   * check is inside the flight). It runs on the daemon's lifetime, so one
   * caller going away does not fail the others.
   */
  private async fetchOnce(name: string, force: boolean, ctx: OpContext): Promise<KernelRow> {
    const entry = await this.opts.catalog.kernel(name);
    if (!entry)
      throw notFound(
        `kernel "${name}" is not in the catalog`,
        'run `banger kernel list --available`; tarball kernels come from the `catalog` file in config.toml',
      );
    const shared: OpContext = { ...ctx, signal: this.lifetime };
    return raceAbort(
      this.flights.run(name, async () => {
        const row = force ? undefined : this.repo.get(name);
        if (row) return row;
        return this.install(name, shared, (scratch) =>
          entry.kind === 'distro'
            ? this.fetchDistro(entry, scratch, shared)
            : this.fetchTarball(entry, scratch, shared),
        );
      }),
      ctx.signal,
    );
  }

  async import(p: ImportParams, ctx: OpContext): Promise<KernelRow> {
    validateKernelName(p.name);
    if (this.repo.get(p.name))
      throw alreadyExists(`kernel "${p.name}" already exists`, `remove it first with \`banger kernel rm ${p.name}\``);
    const src = p.from ? await this.sourceFromDir(p.from) : { kernel: p.kernel, initrd: p.initrd, modules: p.modules };
    if (!src.kernel)
      throw badRequest(
        'kernel import needs kernel (a file) or from (a directory)',
        'e.g. banger kernel import mine --kernel ./vmlinux --initrd ./initrd.img',
      );
    for (const [flag, path] of [
      ['kernel', src.kernel],
      ['initrd', src.initrd],
      ['modules', src.modules],
    ] as const) {
      if (path === undefined) continue;
      if (!isAbsolute(path)) throw badRequest(`${flag} must be an absolute path: ${path}`);
      const st = await stat(path).catch(() => undefined);
      if (!st) throw notFound(`${flag} ${path} does not exist`);
      if (flag === 'modules' ? !st.isDirectory() : !st.isFile())
        throw badRequest(`${flag} ${path} is not a ${flag === 'modules' ? 'directory' : 'file'}`);
    }
    return this.install(p.name, ctx, async (scratch) => ({
      name: p.name,
      distro: 'custom',
      source: `import:${src.kernel}`,
      kernelPath: src.kernel as string,
      initrdPath: src.initrd,
      modulesDir: src.modules,
      scratch,
    }));
  }

  async delete(name: string): Promise<{ name: string }> {
    const row = this.get(name);
    // Row first: a crash before the files are gone leaves a dir without a row, which startup sweeps.
    // Images hold hard links to their kernel files, so removing this dir never breaks them.
    this.repo.delete(name);
    await removeTree(row.dir);
    this.log.info('kernel removed', { name });
    return { name };
  }

  /**
   * staging → assemble → atomic publish → row. Everything is made in one work
   * dir under tmp/ (removed on any failure, and emptied by startup after a crash).
   */
  private async install(
    name: string,
    ctx: OpContext,
    fetch: (scratch: string) => Promise<KernelSource>,
  ): Promise<KernelRow> {
    const work = this.paths.kernelWork(name, randomBytes(6).toString('hex'));
    const staging = join(work, 'out');
    const scratch = join(work, 'scratch');
    await ensureDir(staging);
    await ensureDir(scratch);
    await ensureDir(this.paths.kernelsDir);
    try {
      const src = await fetch(scratch);
      ctx.progress({ stage: 'kernel', message: 'building initramfs and modules disk' });
      const manifest = await assembleKernel(src, staging, this.runner, this.lifetime);
      const final = this.paths.kernelDir(name);
      // A forced re-pull moves the old dir aside first (a dir cannot be renamed over a non-empty one).
      if (await exists(final)) await rename(final, join(work, 'old'));
      await rename(staging, final);
      const row = rowFromManifest(manifest, final);
      this.repo.insert(row);
      this.log.info('kernel installed', { name, version: row.version, source: row.source });
      return row;
    } finally {
      await removeTree(work);
    }
  }

  private async fetchDistro(entry: DistroKernelEntry, scratch: string, ctx: OpContext): Promise<KernelSource> {
    const signal = this.lifetime;
    const pkg = await this.resolvePackage(entry.package, signal);
    ctx.progress({ stage: 'kernel', message: `downloading ${pkg} with apt-get` });
    const dl = join(scratch, 'download');
    await ensureDir(dl);
    // Download only: the package is unpacked into banger's own directory, never installed on the host.
    await this.runner.check(['apt-get', 'download', '-q', pkg], { cwd: dl, signal });
    const deb = (await readdir(dl)).find((f) => f.endsWith('.deb'));
    if (!deb) throw operationFailed(`apt-get download ${pkg} produced no .deb file`);
    const tree = join(scratch, 'tree');
    await this.runner.check(['dpkg-deb', '-x', join(dl, deb), tree], { signal });
    await removeTree(dl);
    const vmlinuz = (await readdir(join(tree, 'boot'))).find((f) => f.startsWith('vmlinuz-'));
    const release = vmlinuz && kernelReleaseFromVmlinuz(vmlinuz);
    if (!vmlinuz || !release) throw operationFailed(`${pkg} contains no boot/vmlinuz-*`);
    const modRoot = (await exists(join(tree, 'lib', 'modules', release))) ? tree : join(tree, 'usr');
    ctx.progress({ stage: 'kernel', message: `indexing modules of ${release}` });
    // The package ships no modules.dep (its postinst runs depmod); generate it in our copy.
    await this.runner.check(['depmod', '-b', modRoot, release], { signal });
    return {
      name: entry.name,
      distro: entry.distro,
      source: `apt:${pkg}`,
      kernelPath: join(tree, 'boot', vmlinuz),
      modulesDir: join(modRoot, 'lib', 'modules', release),
      scratch,
    };
  }

  private async fetchTarball(entry: TarballKernelEntry, scratch: string, ctx: OpContext): Promise<KernelSource> {
    const url = checkUrl(entry.url, this.opts.fetchPolicy);
    ctx.progress({ stage: 'kernel', message: `downloading ${entry.url}` });
    const { stream } = await openUrl(url, {
      signal: this.lifetime,
      fetch: this.opts.http,
      policy: this.opts.fetchPolicy,
      onProgress: downloadProgress(ctx, 'kernel', entry.url),
    });
    const tree = join(scratch, 'tree');
    await ensureDir(tree);
    const res = await extractKernelTarball(stream, tree, entry.sha256, entry.url, this.lifetime);
    let modulesDir: string | undefined;
    if (await exists(join(tree, 'modules'))) {
      const subs = (await readdir(join(tree, 'modules'), { withFileTypes: true })).filter(
        (d) => d.isDirectory() && /^\d/.test(d.name),
      );
      modulesDir = subs.length === 1 && subs[0] ? join(tree, 'modules', subs[0].name) : join(tree, 'modules');
    }
    return {
      name: entry.name,
      distro: entry.distro,
      source: entry.url,
      kernelPath: join(tree, res.kernelFile),
      initrdPath: res.hasInitrd ? join(tree, 'initrd.img') : undefined,
      modulesDir,
      scratch,
    };
  }

  private async sourceFromDir(dir: string): Promise<{ kernel?: string; initrd?: string; modules?: string }> {
    if (!isAbsolute(dir)) throw badRequest(`from must be an absolute path: ${dir}`);
    const names = await readdir(dir).catch(() => {
      throw notFound(`from ${dir} does not exist or is not a directory`);
    });
    const kernel =
      ['vmlinux', 'bzImage', 'vmlinuz'].find((n) => names.includes(n)) ?? names.find((n) => n.startsWith('vmlinuz-'));
    if (!kernel)
      throw badRequest(
        `no kernel in ${dir}`,
        'the directory needs vmlinux, bzImage or vmlinuz[-VERSION], optionally initrd.img and modules/',
      );
    const initrd =
      ['initrd.img', 'initrd'].find((n) => names.includes(n)) ?? names.find((n) => n.startsWith('initrd.img-'));
    let modules: string | undefined;
    if (names.includes('modules')) {
      const subs = (await readdir(join(dir, 'modules'), { withFileTypes: true })).filter(
        (d) => d.isDirectory() && /^\d/.test(d.name),
      );
      modules = subs.length === 1 && subs[0] ? join(dir, 'modules', subs[0].name) : join(dir, 'modules');
    }
    return {
      kernel: join(dir, kernel),
      ...(initrd ? { initrd: join(dir, initrd) } : {}),
      ...(modules ? { modules } : {}),
    };
  }

  private async resolvePackage(meta: string, signal: AbortSignal): Promise<string> {
    const res = await this.runner.run(['apt-cache', 'depends', '--no-recommends', '--no-suggests', meta], { signal });
    const pkg = res.code === 0 ? parseAptDepends(res.stdout) : undefined;
    if (!pkg) {
      throw new AppError('precondition', `the host's package index does not know ${meta}`, {
        hint: 'run `apt-get update` (as root) so apt can find the Debian cloud kernel, then retry',
        detail: res.stderr.trim(),
      });
    }
    return pkg;
  }
}
