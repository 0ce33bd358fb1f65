import { copyFile, cp, readFile, writeFile } from 'node:fs/promises';
import { readHead } from '../../archive/read-head.js';
import { basename, join } from 'node:path';
import { badRequest } from '../../errors.js';
import { mkfsFromTreeArgv } from '../../ext4/mkfs.js';
import { kernelFormat } from '../../kernel/apt.js';
import { hasPvhNoteInFile, virtioMmioSupport } from '../../kernel/compat.js';
import { INITRAMFS_VERSION } from '../../kernel/initramfs.js';
import { parseModulesDep } from '../../kernel/modules-dep.js';
import { kernelRelease } from '../../kernel/version.js';
import { kernelFiles } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import { exists, roundUpMiB, sha256File, treeBytes } from '../fsutil.js';
import { writeBangerInitramfs } from './initramfs-refresh.js';
import type { KernelManifest } from './manifest.js';

/** Where a kernel comes from, before banger makes it boot-ready. */
export interface KernelSource {
  name: string;
  distro: string;
  source: string;
  kernelPath: string;
  initrdPath?: string | undefined;
  /** A lib/modules/<release> directory (modules.dep is generated when missing). */
  modulesDir?: string | undefined;
  /** Directory banger may write into (depmod needs a writable copy). */
  scratch: string;
}

const HEAD_BYTES = 4 << 20;

/**
 * Turns a kernel source into a boot-ready kernel dir in `staging`: the kernel
 * (bzImage or vmlinux), an initrd (the given one, or banger's generated
 * initramfs when the virtio drivers are modules), the read-only modules disk,
 * and manifest.json. Used by distribution pulls, tarball pulls and imports.
 */
export async function assembleKernel(
  src: KernelSource,
  staging: string,
  runner: CommandRunner,
  signal?: AbortSignal,
): Promise<KernelManifest> {
  const head = await readHead(src.kernelPath, HEAD_BYTES);
  const format = kernelFormat(head);
  if (format === 'unknown') {
    throw badRequest(
      `${src.kernelPath} is neither a bzImage nor an ELF vmlinux`,
      'pass the kernel image itself (vmlinuz/bzImage or vmlinux)',
    );
  }
  const out = join(staging, format === 'elf' ? kernelFiles.vmlinux : kernelFiles.bzImage);
  await copyFile(src.kernelPath, out);

  let release = kernelRelease(head, format);
  let moduleCount = 0;
  let virtioMmio: KernelManifest['traits']['virtioMmio'] = 'unknown';
  let initramfsModules: string[] | undefined;
  let initrd: KernelManifest['initrd'] = 'none';
  let hasModulesDisk = false;

  if (src.modulesDir) {
    release = release ?? basename(src.modulesDir);
    let modDir = src.modulesDir;
    if (!(await exists(join(modDir, 'modules.dep')))) {
      const root = join(src.scratch, 'depmod');
      const copy = join(root, 'lib', 'modules', release);
      await cp(modDir, copy, { recursive: true, verbatimSymlinks: true });
      await runner.check(['depmod', '-b', root, release], { signal });
      modDir = copy;
    }
    const depText = await readFile(join(modDir, 'modules.dep'), 'utf8');
    const builtinText = await readFile(join(modDir, 'modules.builtin'), 'utf8').catch(() => undefined);
    const dep = parseModulesDep(depText);
    moduleCount = dep.size;
    virtioMmio = virtioMmioSupport(builtinText, depText);
    const { bytes } = await treeBytes(modDir);
    await runner.check(
      mkfsFromTreeArgv({
        image: join(staging, kernelFiles.modulesDisk),
        tree: modDir,
        sizeBytes: roundUpMiB(bytes * 1.3 + 32 * 1048576),
        label: 'modules',
      }),
      { signal },
    );
    hasModulesDisk = true;
    if (!src.initrdPath) {
      const source = {
        release,
        depText,
        builtinText,
        read: (paths: readonly string[]) => Promise.all(paths.map((p) => readFile(join(modDir, p)))),
      };
      initramfsModules = await writeBangerInitramfs(source, join(staging, kernelFiles.initrd));
      if (initramfsModules) initrd = 'banger';
    }
  }
  if (src.initrdPath) {
    await copyFile(src.initrdPath, join(staging, kernelFiles.initrd));
    initrd = 'external';
  }

  const manifest: KernelManifest = {
    name: src.name,
    distro: src.distro,
    arch: 'x86_64',
    version: release ?? 'unknown',
    format,
    sha256: await sha256File(out),
    source: src.source,
    imported_at: new Date().toISOString(),
    initrd,
    modules: moduleCount,
    has_modules_disk: hasModulesDisk,
    traits: { pvhNote: format === 'elf' ? await hasPvhNoteInFile(out) : false, virtioMmio },
    ...(initramfsModules ? { initramfs_modules: initramfsModules, initramfs_version: INITRAMFS_VERSION } : {}),
  };
  await writeFile(join(staging, kernelFiles.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
