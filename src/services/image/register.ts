import { randomBytes } from 'node:crypto';
import { copyFile, rename, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { alreadyExists, badRequest, precondition } from '../../errors.js';
import type { ImageRow } from '../../store/images.js';
import type { KernelRow } from '../../store/kernels.js';
import { imageFiles, type Paths } from '../../system/paths.js';
import type { OpContext } from '../context.js';
import { removeTree } from '../fsutil.js';
import { assertExt4, IMAGE_KERNEL_DIR, linkTree, validateImageName } from './files.js';
import type { ImagePublisher, ImageRows } from './publish.js';

export interface RegisterParams {
  name: string;
  rootfs: string;
  kernel_ref?: string | undefined;
  work_seed?: string | undefined;
}

export interface RegisterDeps {
  paths: Paths;
  repo: ImageRows;
  publisher: ImagePublisher;
  kernels: { ensure(name: string, ctx: OpContext): Promise<KernelRow> };
  defaultKernel: string;
}

/** `image register`: an unmanaged image whose rootfs stays where it is on the host. */
export async function registerImage(d: RegisterDeps, p: RegisterParams, ctx: OpContext): Promise<ImageRow> {
  validateImageName(p.name);
  if (d.publisher.find(p.name)) throw alreadyExists(`image "${p.name}" already exists`, 'pick another name');
  if (!isAbsolute(p.rootfs)) throw badRequest(`rootfs must be an absolute path: ${p.rootfs}`);
  await assertExt4(p.rootfs, 'rootfs');
  if (p.work_seed) await assertExt4(p.work_seed, 'work_seed');
  const kernel = await d.kernels.ensure(p.kernel_ref ?? d.defaultKernel, ctx);
  const id = randomBytes(8).toString('hex');
  const staging = await d.publisher.newStaging(id);
  const final = d.paths.imageDir(id);
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
  d.repo.insert(row);
  return row;
}

/** `image promote`: copies a registered image's files into managed storage. */
export async function promoteImage(repo: ImageRows, row: ImageRow): Promise<void> {
  if (row.managed) throw precondition(`image "${row.name}" is already managed`);
  const rootfs = join(row.dir, imageFiles.rootfs);
  await copyFile(row.rootfsPath, `${rootfs}.partial`);
  await rename(`${rootfs}.partial`, rootfs);
  let workSeed: string | undefined;
  if (row.workSeedPath) {
    workSeed = join(row.dir, imageFiles.workSeed);
    await copyFile(row.workSeedPath, workSeed);
  }
  repo.setFiles(row.id, {
    managed: true,
    rootfsPath: rootfs,
    workSeedPath: workSeed,
    source: `promoted:${row.source}`,
  });
}
