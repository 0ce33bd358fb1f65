import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError, operationFailed, precondition } from '../../errors.js';
import { ASSETS_VERSION } from '../../guest/assets.js';
import type { ImageRow } from '../../store/images.js';
import { imageFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { Logger, OpContext } from '../context.js';
import { raceAbort, removeTree } from '../fsutil.js';
import { SingleFlight } from '../singleflight.js';
import { injectGuestAssets, missingMountPoints } from './guest-assets.js';
import { ImageLeases } from './lease.js';
import type { ImageRows } from './publish.js';

/** manifest.json is banger's own small file; anything bigger is not rewritten. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

export interface RefreshDeps {
  paths: Paths;
  repo: ImageRows;
  runner: CommandRunner;
  log: Logger;
  /** Names of the VMs using an image (their root disks are overlays of its rootfs). */
  usedBy: (imageId: string) => string[];
  /** Shared with VM creation, which makes root disks from the rootfs under a shared lease (lease.ts). */
  leases: ImageLeases;
  /** Test seam: awaited after the last "no VM uses the image" check, before the swap. */
  beforeSwap?: () => Promise<void>;
}

/** The refusal for an image that VMs use: changing a base image under qcow2 overlays corrupts them. */
export function refuseIfUsed(row: ImageRow, users: string[]): void {
  if (users.length === 0) return;
  const s = users.length > 1 ? 's' : '';
  throw precondition(
    `image "${row.name}" is used by VM${s} ${users.join(', ')}: their root disks are overlays of its rootfs, which a refresh would change under them`,
    `delete the VM${s} first (\`banger vm delete ${users.join(' ')}\`), or pull the image again under another name with --name and create new VMs from that`,
  );
}

/** e2fsck -fn: debugfs -w on a filesystem with a dirty journal is undone at the next mount (docs/TESTING.md). */
async function checkClean(runner: CommandRunner, rootfs: string, row: ImageRow, signal: AbortSignal): Promise<void> {
  const res = await runner.run(['e2fsck', '-fn', rootfs], { signal });
  if (res.code === 0) return;
  const first = `${res.stdout}\n${res.stderr}`
    .split('\n')
    .filter((l) => l.trim() !== '' && !/^(Pass \d|e2fsck \d)|\*{5}|\? no$|^\s/.test(l))
    .slice(0, 3)
    .join('; ');
  throw precondition(
    `the rootfs of image "${row.name}" is not a clean ext4 filesystem (e2fsck -fn exited ${res.code}): ${first || 'see e2fsck -fn'}`,
    `check it with \`e2fsck -fn ${rootfs}\`; or delete the image and pull it again`,
  );
}

/**
 * `image refresh`: the current guest assets (and missing mount points) go into a
 * copy of the image's rootfs, which replaces the original by rename once it is
 * complete and fsck-clean; then manifest.json and the row record ASSETS_VERSION.
 * Refused for registered images (their rootfs is the user's file) and while any
 * VM uses the image. On failure the copy is removed and the image is unchanged.
 */
export async function refreshImage(d: RefreshDeps, row: ImageRow, ctx: OpContext): Promise<ImageRow> {
  if (!row.managed)
    throw precondition(
      `image "${row.name}" is registered: its rootfs ${row.rootfsPath} is your file, which banger does not rewrite`,
      `run \`banger image promote ${row.name}\` to copy it into banger's storage first, then refresh it`,
    );
  refuseIfUsed(row, d.usedBy(row.id));
  const signal = ctx.signal;
  const staging = d.paths.imageStaging(`refresh-${randomBytes(6).toString('hex')}`);
  const copy = join(staging, imageFiles.rootfs);
  const manifestPath = join(row.dir, imageFiles.manifest);
  const manifestTmp = `${manifestPath}.refresh-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(staging, { recursive: true, mode: 0o700 });
    ctx.progress({ stage: 'image', message: `copying the rootfs of ${row.name}` });
    // Sparse (and reflinked where the filesystem can): the rootfs is mostly holes.
    await d.runner.check(['cp', '--sparse=always', '--reflink=auto', '--', row.rootfsPath, copy], { signal });
    await checkClean(d.runner, copy, row, signal);
    ctx.progress({ stage: 'image', message: `injecting guest assets v${ASSETS_VERSION}` });
    const dirs = await missingMountPoints(d.runner, copy, signal);
    await injectGuestAssets(d.runner, staging, copy, { dirs }, signal);
    await checkClean(d.runner, copy, row, signal);
    const manifest = await readManifest(manifestPath);
    await writeFile(manifestTmp, `${JSON.stringify({ ...manifest, assets_version: ASSETS_VERSION }, null, 2)}\n`);
    // A VM created meanwhile would have an overlay on the old rootfs: check again just before the swap,
    // under the exclusive lease, so no root disk is being made from the rootfs between the check and the
    // swap (a create makes its row before its root disk: it is either seen here or waits for the swap).
    await d.leases.withExclusive(row.id, async () => {
      refuseIfUsed(row, d.usedBy(row.id));
      await d.beforeSwap?.();
      await rename(copy, row.rootfsPath);
      await rename(manifestTmp, manifestPath);
      d.repo.setAssetsVersion(row.id, ASSETS_VERSION);
    });
    d.log.info('image refreshed', { name: row.name, from: row.assetsVersion, to: ASSETS_VERSION, mounts: dirs.length });
    return { ...row, assetsVersion: ASSETS_VERSION };
  } finally {
    await removeTree(staging);
    await removeTree(manifestTmp);
  }
}

/** The image's manifest.json as an object ({} when it is missing). */
async function readManifest(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
  if (text.length > MAX_MANIFEST_BYTES) throw operationFailed(`${path} is larger than ${MAX_MANIFEST_BYTES} bytes`);
  const body: unknown = JSON.parse(text);
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw operationFailed(`${path} is not a JSON object`, { hint: 'delete the image and pull it again' });
  return body as Record<string, unknown>;
}

/**
 * The built-in default image gains the current guest assets on its own (at
 * `ensure`, i.e. first use after an upgrade), so existing users get the agent
 * without rebuilding. Kept as it is while VMs use it (logged); a failed refresh
 * is logged and the image is used as it is.
 */
export async function autoRefresh(
  d: RefreshDeps,
  row: ImageRow,
  ctx: OpContext,
  refresh: (row: ImageRow, ctx: OpContext) => Promise<ImageRow>,
): Promise<ImageRow> {
  if (!row.managed || row.assetsVersion >= ASSETS_VERSION) return row;
  const users = d.usedBy(row.id);
  if (users.length > 0) {
    d.log.info('default image keeps its older guest assets while VMs use it', {
      name: row.name,
      assets_version: row.assetsVersion,
      vms: users.join(','),
    });
    return row;
  }
  ctx.progress({
    stage: 'image',
    message: `updating guest assets of ${row.name} (v${row.assetsVersion} → v${ASSETS_VERSION})`,
  });
  try {
    return await refresh(row, ctx);
  } catch (e) {
    if (e instanceof AppError && e.code === 'cancelled') throw e;
    d.log.warn('could not refresh the guest assets of the default image; using it as it is', {
      name: row.name,
      error: String(e),
    });
    return d.repo.get(row.id) ?? row;
  }
}

/** Refreshes, one at a time per image; callers of the same image share one (on the daemon's lifetime). */
export class ImageRefresher {
  private readonly flights = new SingleFlight<ImageRow>();

  constructor(
    private readonly d: RefreshDeps,
    private readonly lifetime: AbortSignal,
  ) {}

  /** Runs fn (a VM's root disk made from the image's rootfs) while no refresh swaps that rootfs. */
  withRootfs<T>(imageId: string, fn: () => Promise<T>): Promise<T> {
    return this.d.leases.withShared(imageId, fn);
  }

  refresh(row: ImageRow, ctx: OpContext): Promise<ImageRow> {
    const shared: OpContext = { ...ctx, signal: this.lifetime };
    return raceAbort(
      this.flights.run(row.id, () => refreshImage(this.d, row, shared)),
      ctx.signal,
    );
  }

  /** The default image at `ensure`: refreshed when its assets are older and no VM uses it (autoRefresh). */
  auto(row: ImageRow, ctx: OpContext): Promise<ImageRow> {
    return autoRefresh(this.d, row, ctx, (r, c) => this.refresh(r, c));
  }
}
