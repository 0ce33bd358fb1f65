import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { operationFailed, precondition } from '../../errors.js';
import { debugfsErrors, debugfsQuote } from '../../ext4/debugfs.js';
import { buildInitramfs, INITRAMFS_MODULES, INITRAMFS_VERSION } from '../../kernel/initramfs.js';
import { loadOrder, moduleName, parseModulesBuiltin, parseModulesDep } from '../../kernel/modules-dep.js';
import { guestBinary, kernelFiles } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import { ensureDir, removeTree } from '../fsutil.js';
import { filesOf, type KernelFiles, type KernelManifest } from './manifest.js';

/** The modules of one kernel, as banger's initramfs needs them. */
export interface ModuleSource {
  release: string;
  /** modules.dep text. */
  depText: string;
  /** modules.builtin text, when the kernel has one. */
  builtinText: string | undefined;
  /** Reads the modules at these paths (relative to lib/modules/<release>). */
  read(paths: readonly string[]): Promise<Buffer[]>;
}

/**
 * Writes banger's initramfs (banger-init and the INITRAMFS_MODULES the kernel has
 * as modules, in modules.dep order) to `out`. Returns the module load order, or
 * undefined (nothing written) when every wanted driver is built in.
 */
export async function writeBangerInitramfs(src: ModuleSource, out: string): Promise<string[] | undefined> {
  const dep = parseModulesDep(src.depText);
  const builtin = parseModulesBuiltin(src.builtinText ?? '');
  const needed = INITRAMFS_MODULES.filter((m) => [...dep.keys()].some((p) => moduleName(p) === m));
  if (needed.length === 0) return undefined;
  const order = loadOrder(dep, builtin, needed);
  const init = await readFile(guestBinary('banger-init')).catch(() => {
    throw precondition(
      `the guest init program is missing: ${guestBinary('banger-init')}`,
      'run `npm run build` in the banger checkout',
    );
  });
  const data = await src.read(order);
  const modules = order.map((path, i) => ({ path, data: data[i] as Buffer }));
  await writeFile(out, buildInitramfs({ release: src.release, init, modules }));
  return order;
}

/** True when the kernel's initramfs is banger's and older than this banger's (or it has none to refresh). */
export function initramfsStale(m: KernelManifest): boolean {
  return m.initrd === 'banger' && (m.initramfs_version ?? 1) < INITRAMFS_VERSION;
}

/**
 * The modules on a kernel's modules disk (an ext4 whose root is lib/modules/<release>),
 * read with debugfs: the disk is banger's own, made when the kernel was assembled.
 */
export function modulesDiskSource(
  disk: string,
  release: string,
  scratch: string,
  runner: CommandRunner,
  signal?: AbortSignal,
): { load(): Promise<ModuleSource> } {
  const cat = async (path: string): Promise<string | undefined> => {
    const res = await runner.run(['debugfs', '-R', `cat ${debugfsQuote(path)}`, disk], signal ? { signal } : {});
    if (res.code !== 0 || debugfsErrors(res.stderr).length > 0) return undefined;
    return res.stdout;
  };
  return {
    load: async () => {
      const depText = await cat('/modules.dep');
      if (depText === undefined || depText.trim() === '')
        throw operationFailed(`the modules disk ${disk} has no modules.dep`, {
          hint: 'pull or import the kernel again (`banger kernel pull --force NAME`)',
        });
      return {
        release,
        depText,
        builtinText: await cat('/modules.builtin'),
        read: async (paths) => {
          await ensureDir(scratch);
          const script = paths.map(
            (p, i) => `dump ${debugfsQuote(`/${p}`)} ${debugfsQuote(join(scratch, String(i)))}\n`,
          );
          const res = await runner.check(['debugfs', '-f', '-', disk], {
            input: script.join(''),
            ...(signal ? { signal } : {}),
          });
          const errors = debugfsErrors(`${res.stdout}\n${res.stderr}`);
          if (errors.length > 0)
            throw operationFailed(`cannot read the kernel modules from ${disk}`, { detail: errors.join('\n') });
          return Promise.all(paths.map((_, i) => readFile(join(scratch, String(i)))));
        },
      };
    },
  };
}

/**
 * Regenerates the initramfs of a kernel dir assembled by an older banger (see
 * INITRAMFS_VERSION), from its modules disk, and records the new version. The
 * initrd and the manifest are replaced by rename: a kernel dir an image shares
 * by hard links keeps its old files until it is refreshed itself, and a VMM
 * that already read the old initrd is not disturbed. Other kernels are returned as they are.
 */
export async function refreshInitramfs(
  files: KernelFiles,
  scratch: string,
  runner: CommandRunner,
  signal?: AbortSignal,
): Promise<KernelFiles> {
  const m = files.manifest;
  if (!initramfsStale(m) || files.modulesDisk === undefined) return files;
  try {
    const src = await modulesDiskSource(files.modulesDisk, m.version, join(scratch, 'modules'), runner, signal).load();
    const tmp = join(files.dir, `${kernelFiles.initrd}.new`);
    const order = await writeBangerInitramfs(src, tmp);
    if (order === undefined) {
      await removeTree(tmp);
      return files;
    }
    await rename(tmp, join(files.dir, kernelFiles.initrd));
    const next: KernelManifest = { ...m, initramfs_modules: order, initramfs_version: INITRAMFS_VERSION };
    const mtmp = join(files.dir, `${kernelFiles.manifest}.new`);
    await writeFile(mtmp, `${JSON.stringify(next, null, 2)}\n`);
    await rename(mtmp, join(files.dir, kernelFiles.manifest));
    return filesOf(files.dir, next);
  } finally {
    await removeTree(scratch);
  }
}
