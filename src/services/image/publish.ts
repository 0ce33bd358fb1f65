import { randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { alreadyExists } from '../../errors.js';
import { ASSETS_VERSION } from '../../guest/assets.js';
import type { ImageRow } from '../../store/images.js';
import { imageFiles, type Paths } from '../../system/paths.js';
import type { Logger, OpContext } from '../context.js';
import { removeTree } from '../fsutil.js';
import { IMAGE_KERNEL_DIR, linkTree, validateImageName } from './files.js';
import type { LayerInput, RootfsBuilder } from './pipeline.js';

/** The image rows the image service reads and writes (store/images.ts). */
export interface ImageRows {
  list(): ImageRow[];
  get(id: string): ImageRow | undefined;
  byName(name: string): ImageRow | undefined;
  insert(row: ImageRow): void;
  delete(id: string): void;
  setAssetsVersion(id: string, version: number): void;
  setFiles(
    id: string,
    f: { managed: boolean; rootfsPath: string; workSeedPath: string | undefined; source: string },
  ): void;
}

/** The part of RootfsBuilder (pipeline.ts) the image service uses. */
export type ImageBuilder = Pick<RootfsBuilder, 'build' | 'workSeedFromRootfs'>;

/** What a produced image is, besides its rootfs. */
export interface ImageOrigin {
  name: string;
  source: string;
  kernelName: string;
  kernelDir: string;
  manifest: Record<string, unknown>;
}

/**
 * Staging dirs, published image dirs and their rows: every way an image is
 * made ends here, so nothing half-made is ever listed.
 */
export class ImagePublisher {
  constructor(
    private readonly paths: Paths,
    private readonly repo: ImageRows,
    private readonly builder: ImageBuilder,
    private readonly log: Logger,
    private readonly lifetime: AbortSignal,
  ) {}

  find(nameOrId: string): ImageRow | undefined {
    return this.repo.byName(nameOrId) ?? this.repo.get(nameOrId);
  }

  /** A private staging dir under state/tmp/, and the images dir it is renamed into when done. */
  async newStaging(id: string): Promise<string> {
    const staging = this.paths.imageStaging(id);
    await mkdir(this.paths.imagesDir, { recursive: true });
    await mkdir(staging, { recursive: true, mode: 0o700 });
    return staging;
  }

  /** The row of a published image dir; when that fails the dir goes too, and a name another pull took meanwhile is already_exists. */
  async insertPublished(row: ImageRow): Promise<void> {
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
  checkNewName(name: string): void {
    validateImageName(name);
    if (this.find(name))
      throw alreadyExists(
        `image "${name}" already exists`,
        'pass --name to pull it under another name, or delete the existing one',
      );
  }

  /**
   * Staging → shared rootfs pipeline → the image's own kernel links →
   * manifest → atomic rename → row. Any failure removes the staging dir, so
   * nothing half-built is ever listed (SPEC §6.1 step 9).
   */
  async produce(
    what: ImageOrigin,
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
