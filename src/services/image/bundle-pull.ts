import { randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { badRequest } from '../../errors.js';
import { formatSize } from '../../config/sizes.js';
import { BUNDLE_ROOTFS, isSha256Hex, readBundle, type BundleManifest } from '../../imagepull/bundle.js';
import { checkUrl, openUrl } from '../../net/download.js';
import type { HttpFetch } from '../../net/transport.js';
import type { ImageRow } from '../../store/images.js';
import type { KernelRow } from '../../store/kernels.js';
import { imageFiles, type Paths } from '../../system/paths.js';
import { downloadProgress, type OpContext } from '../context.js';
import { raceAbort, removeTree } from '../fsutil.js';
import { IMAGE_KERNEL_DIR, linkTree } from './files.js';
import type { ImageBuilder, ImagePublisher } from './publish.js';
import type { PullParams } from './service.js';
import { readImageManifest, readRuntimeConfig } from './oci-config.js';

/** What pulling a bundle needs from the image service. */
export interface BundlePullDeps {
  paths: Paths;
  publisher: ImagePublisher;
  builder: ImageBuilder;
  lifetime: AbortSignal;
  insecureHosts: readonly string[];
  http: HttpFetch | undefined;
  /** SPEC §6.1 step 2 kernel choice for an image named imageName. */
  resolveKernel: (p: PullParams, imageName: string, ctx: OpContext) => Promise<KernelRow>;
  /** Removes a kernel imported for a pull that failed. */
  undoKernelImport: (name: string | undefined) => Promise<void>;
}

/** True when a pull imports its own kernel from --kernel files (rather than naming one with --kernel-ref). */
export const importsKernel = (p: PullParams): boolean => p.kernel !== undefined && p.kernel_ref === undefined;

/** SPEC §6.2: a bundle (rootfs.ext4 + manifest.json in a sha256-pinned tar.zst) from https:// or file://. */
export async function pullBundle(d: BundlePullDeps, p: PullParams, ctx: OpContext): Promise<ImageRow> {
  // Everything the request alone decides is checked before a connection is made or a file opened.
  const url = checkUrl(p.ref, { insecureHosts: d.insecureHosts });
  if (!p.sha256)
    throw badRequest(
      'pulling a bundle needs sha256',
      'the publisher of the bundle gives its sha256 (banger image export prints it)',
    );
  if (!isSha256Hex(p.sha256))
    throw badRequest(
      `invalid sha256 ${JSON.stringify(p.sha256)}: a sha256 is 64 hexadecimal digits`,
      'banger image export prints the sha256 of a bundle',
    );
  if (p.size_bytes !== undefined)
    throw badRequest(
      `size ${formatSize(p.size_bytes)} does not apply to a bundle: its rootfs keeps the size it was exported with`,
      'leave out --size',
    );
  if (!p.kernel && (p.initrd || p.modules))
    throw badRequest('initrd and modules need kernel', 'pass the kernel image with --kernel, or use --kernel-ref NAME');
  if (p.name !== undefined) d.publisher.checkNewName(p.name);
  const id = randomBytes(8).toString('hex');
  const staging = await d.publisher.newStaging(id);
  let imported: string | undefined;
  try {
    ctx.progress({ stage: 'download', message: `fetching ${p.ref}` });
    const { stream } = await openUrl(url, {
      signal: d.lifetime,
      fetch: d.http,
      onProgress: downloadProgress(ctx, 'download', `fetching ${p.ref}`),
    });
    const unpack = join(staging, 'bundle');
    await mkdir(unpack);
    // The name from the manifest is checked as soon as the manifest arrives (first in an exported bundle),
    // not after the rootfs downloaded; and again at the end, for a manifest that came last.
    const checkDerived = (m: BundleManifest): void => {
      if (p.name === undefined) d.publisher.checkNewName(m.name);
    };
    const { manifest } = await raceAbort(
      readBundle(stream, unpack, p.sha256, p.ref, d.lifetime, checkDerived),
      ctx.signal,
    );
    const name = p.name ?? manifest.name;
    d.publisher.checkNewName(name);
    // Explicit --kernel files beat the manifest's kernel_ref (SPEC §6.1 step 2).
    const kernel = await d.resolveKernel(
      { ...p, kernel_ref: p.kernel_ref ?? (p.kernel ? undefined : manifest.kernel_ref) },
      name,
      ctx,
    );
    if (importsKernel(p)) imported = kernel.name;
    const rootfs = join(staging, imageFiles.rootfs);
    await rename(join(unpack, BUNDLE_ROOTFS), rootfs);
    await removeTree(unpack);
    ctx.progress({ stage: 'image', message: 'building the work-seed' });
    const workSeed = await d.builder.workSeedFromRootfs(staging, rootfs, p.ref, d.lifetime);
    await linkTree(kernel.dir, join(staging, IMAGE_KERNEL_DIR));
    await writeFile(
      join(staging, imageFiles.manifest),
      `${JSON.stringify({ ...manifest, name, source: p.ref, sha256: p.sha256 }, null, 2)}\n`,
    );
    const final = d.paths.imageDir(id);
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
    await d.publisher.insertPublished(row);
    return row;
  } catch (e) {
    await removeTree(staging);
    await d.undoKernelImport(imported);
    throw e;
  }
}

/**
 * What a bundle carries beyond the rootfs, from the image's manifest.json:
 * its runtime config (checked again on the way out) and has_sshd/has_systemd.
 * Keys the image does not record are left out, so such bundles stay readable
 * by a banger that predates them.
 */
export async function bundleExtras(
  imageDir: string,
): Promise<Pick<BundleManifest, 'config' | 'has_sshd' | 'has_systemd'>> {
  const out: Pick<BundleManifest, 'config' | 'has_sshd' | 'has_systemd'> = {};
  const config = await readRuntimeConfig(imageDir);
  if (config !== undefined) out.config = config;
  const m = await readImageManifest(imageDir);
  if (typeof m?.has_sshd === 'boolean') out.has_sshd = m.has_sshd;
  if (typeof m?.has_systemd === 'boolean') out.has_systemd = m.has_systemd;
  return out;
}
