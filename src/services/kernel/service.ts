import { copyFile, open, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findKernelEntry, type DistroKernelEntry } from '../../catalog.js';
import { AppError, notFound, operationFailed, precondition } from '../../errors.js';
import { mkfsFromTreeArgv } from '../../ext4/mkfs.js';
import { kernelFormat, kernelReleaseFromVmlinuz, parseAptDepends } from '../../kernel/apt.js';
import { buildInitramfs, INITRAMFS_MODULES } from '../../kernel/initramfs.js';
import { loadOrder, parseModulesBuiltin, parseModulesDep } from '../../kernel/modules-dep.js';
import type { KernelRepo, KernelRow } from '../../store/kernels.js';
import { guestBinary, kernelFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { Logger, OpContext } from '../context.js';
import { ensureDir, exists, raceAbort, removeTree, roundUpMiB, sha256File, treeBytes } from '../fsutil.js';
import { SingleFlight } from '../singleflight.js';

export interface KernelFiles {
  row: KernelRow;
  kernel: string;
  initrd: string | undefined;
  modulesDisk: string | undefined;
}

/** Kernels: the catalog's distribution kernel pulled through the host's apt, stored under kernels/<name>/. */
export class KernelService {
  private readonly flights = new SingleFlight<KernelRow>();

  constructor(
    private readonly paths: Paths,
    private readonly repo: KernelRepo,
    private readonly runner: CommandRunner,
    private readonly log: Logger,
    /** Lives as long as the daemon: pulls finish even when the asking client goes away. */
    private readonly lifetime: AbortSignal,
  ) {}

  list(): KernelRow[] {
    return this.repo.list();
  }

  files(row: KernelRow): KernelFiles {
    return {
      row,
      kernel: join(row.dir, row.format === 'elf' ? kernelFiles.vmlinux : kernelFiles.bzImage),
      initrd: row.hasInitrd ? join(row.dir, kernelFiles.initrd) : undefined,
      modulesDisk: row.hasModules ? join(row.dir, kernelFiles.modulesDisk) : undefined,
    };
  }

  /** The named kernel, pulled from the catalog on first use. */
  async ensure(name: string, ctx: OpContext): Promise<KernelRow> {
    const row = this.repo.get(name);
    if (row) return row;
    const entry = findKernelEntry(name);
    if (!entry) {
      throw notFound(`kernel "${name}" is not installed and not in the catalog`, 'run `banger kernel list` to see what is installed');
    }
    ctx.progress({ stage: 'kernel', message: `pulling kernel ${name} (first use)` });
    return raceAbort(this.flights.run(name, () => this.pullDistro(entry, ctx)), ctx.signal);
  }

  /** Removes staging dirs left by a daemon that died mid-pull. */
  async cleanStaging(): Promise<void> {
    if (!(await exists(this.paths.kernelsDir))) return;
    for (const e of await readdir(this.paths.kernelsDir)) {
      if (e.endsWith('.staging')) await removeTree(join(this.paths.kernelsDir, e));
    }
  }

  private async pullDistro(entry: DistroKernelEntry, ctx: OpContext): Promise<KernelRow> {
    const staging = this.paths.kernelStaging(entry.name);
    const final = this.paths.kernelDir(entry.name);
    await removeTree(staging);
    await ensureDir(staging);
    const signal = this.lifetime;
    try {
      const pkg = await this.resolvePackage(entry.package, signal);
      ctx.progress({ stage: 'kernel', message: `downloading ${pkg} with apt-get` });
      const dl = join(staging, 'download');
      await ensureDir(dl);
      // Download only: the package is unpacked into banger's own directory, never installed on the host.
      await this.runner.check(['apt-get', 'download', '-q', pkg], { cwd: dl, signal });
      const deb = (await readdir(dl)).find((f) => f.endsWith('.deb'));
      if (!deb) throw operationFailed(`apt-get download ${pkg} produced no .deb file`);
      const tree = join(staging, 'tree');
      await this.runner.check(['dpkg-deb', '-x', join(dl, deb), tree], { signal });
      await removeTree(dl);

      const vmlinuz = (await readdir(join(tree, 'boot'))).find((f) => f.startsWith('vmlinuz-'));
      const release = vmlinuz && kernelReleaseFromVmlinuz(vmlinuz);
      if (!vmlinuz || !release) throw operationFailed(`${pkg} contains no boot/vmlinuz-*`);
      const modRoot = (await exists(join(tree, 'lib', 'modules', release))) ? tree : join(tree, 'usr');
      const modDir = join(modRoot, 'lib', 'modules', release);
      ctx.progress({ stage: 'kernel', message: `indexing modules of ${release}` });
      // The package ships no modules.dep (its postinst runs depmod); generate it in our copy.
      await this.runner.check(['depmod', '-b', modRoot, release], { signal });

      const dep = parseModulesDep(await readFile(join(modDir, 'modules.dep'), 'utf8'));
      const builtin = parseModulesBuiltin(await readFile(join(modDir, 'modules.builtin'), 'utf8').catch(() => ''));
      const order = loadOrder(dep, builtin, INITRAMFS_MODULES);
      ctx.progress({ stage: 'kernel', message: `writing initramfs (${order.length} modules)` });
      const init = await readFile(guestBinary('banger-init')).catch(() => {
        throw precondition(`the guest init program is missing: ${guestBinary('banger-init')}`, 'run `npm run build` in the banger checkout');
      });
      const modules = await Promise.all(order.map(async (p) => ({ path: p, data: await readFile(join(modDir, p)) })));
      await writeFile(join(staging, kernelFiles.initrd), buildInitramfs({ release, init, modules }));

      ctx.progress({ stage: 'kernel', message: 'building the read-only modules disk' });
      const { bytes } = await treeBytes(modDir);
      await this.runner.check(
        mkfsFromTreeArgv({ image: join(staging, kernelFiles.modulesDisk), tree: modDir, sizeBytes: roundUpMiB(bytes * 1.3 + 32 * 1048576), label: 'modules' }),
        { signal },
      );

      const kernelPath = join(tree, 'boot', vmlinuz);
      const head = Buffer.alloc(1024);
      const fh = await open(kernelPath, 'r');
      await fh.read(head, 0, 1024, 0);
      await fh.close();
      const format = kernelFormat(head);
      if (format === 'unknown') throw operationFailed(`${vmlinuz} is neither a bzImage nor an ELF kernel`);
      const kernelOut = join(staging, format === 'elf' ? kernelFiles.vmlinux : kernelFiles.bzImage);
      await copyFile(kernelPath, kernelOut);
      await removeTree(tree);

      const row: KernelRow = {
        name: entry.name,
        distro: entry.distro,
        arch: 'x86_64',
        version: release,
        format,
        source: `apt:${pkg}`,
        sha256: await sha256File(kernelOut),
        dir: final,
        hasInitrd: true,
        hasModules: true,
        moduleCount: dep.size,
        createdAt: new Date().toISOString(),
      };
      const manifest = { name: row.name, distro: row.distro, arch: row.arch, version: row.version, sha256: row.sha256, source: row.source, format, imported_at: row.createdAt, initramfs_modules: order };
      await writeFile(join(staging, kernelFiles.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
      await removeTree(final);
      await rename(staging, final);
      try {
        this.repo.insert(row);
      } catch (e) {
        await removeTree(final);
        throw e;
      }
      this.log.info('kernel pulled', { name: row.name, version: release, modules: dep.size });
      return row;
    } catch (e) {
      await removeTree(staging);
      throw e;
    }
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
