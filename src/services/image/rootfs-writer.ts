import { createReadStream, createWriteStream } from 'node:fs';
import { meteredLayer } from './layer-progress.js';
import { readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ByteBudget } from '../../archive/byte-budget.js';
import { readTar, type TarEntry, type TarHeader } from '../../archive/tar-reader.js';
import { badRequest, noSpaceError, operationFailed, precondition } from '../../errors.js';
import { defaultRootfsBytes } from '../../ext4/mkfs.js';
import { Ext4FullError, Ext4Writer } from '../../ext4/writer/writer.js';
import { guestAssets, isBuildTimeSecret, MOUNT_POINTS } from '../../guest/assets.js';
import { isImageFile, resolveImagePath } from '../../imagepull/image-path.js';
import { LayerMerger } from '../../imagepull/layer-merge.js';
import type { OpContext } from '../context.js';
import { exists } from '../fsutil.js';
import type { LayerInput } from './pipeline.js';
import { SeedCapture } from './seed-capture.js';

/*
 * The image written straight from the layer streams into ext4 (issue 15):
 * tar reader → LayerMerger (topmost layer first; the guest assets are a
 * synthetic layer above all of them) → Ext4Writer. No file of the image is
 * created on the host. What the old pipeline read from the flattened tree
 * (os-release, sshd, systemd, /root for the work-seed) comes from the
 * merger's record and tap. The image's size must be known before writing:
 * the layers' own size hints (gzip ISIZE, zstd frame size, tar length) are
 * summed; when they are missing or lie (the image fills up), a first pass
 * over the tar headers sums the real sizes and the image is written again.
 */

/** os-release is a few hundred bytes; anything bigger is not read. */
const MAX_OS_RELEASE_BYTES = 64 * 1024;
/** mkfs.ext4's inode_ratio for `-T default`. */
const BYTES_PER_INODE = 16384;

export interface WrittenRootfs {
  sizeBytes: number;
  contentBytes: number;
  distro: string;
  hasSshd: boolean;
  hasSystemd: boolean;
  seed: SeedCapture;
  /** How the size was planned: 'given', 'hint' (layer size hints) or 'scan' (a pass over the tar headers). */
  planned: 'given' | 'hint' | 'scan';
}

export interface WriteRootfsOptions {
  image: string;
  /** A private scratch dir (the staging dir): layers without a size hint are spooled there first. */
  scratch: string;
  sizeBytes?: number | undefined;
  maxUnpackedBytes: number;
  now?: number;
}

interface Plan {
  sizeBytes: number;
  inodes: number;
}

const planFor = (sizeBytes: number, entries = 0): Plan => ({
  sizeBytes,
  inodes: Math.max(Math.ceil(sizeBytes / BYTES_PER_INODE), entries + 1024),
});

/** The guest assets (SPEC §7.4) as tar entries of the topmost layer: they replace what the image has there. */
async function* assetEntries(now: number): AsyncGenerator<TarEntry> {
  const base = guestAssets();
  const header = (name: string, type: TarHeader['type'], mode: number, size = 0, linkname = ''): TarHeader => ({
    name,
    type,
    typeflag: type === 'file' ? '0' : '2',
    mode,
    uid: 0,
    gid: 0,
    size,
    mtime: { sec: now, nsec: 0 },
    linkname,
    devmajor: 0,
    devminor: 0,
    xattrs: [],
  });
  for (const f of base.files) {
    let data: Buffer;
    if ('hostSource' in f) {
      if (!(await exists(f.hostSource)))
        throw precondition(
          `the guest program ${f.hostSource} is missing`,
          'run `npm run build` in the banger checkout',
        );
      data = await readFile(f.hostSource);
    } else data = Buffer.from(f.content);
    yield {
      header: header(f.path.slice(1), 'file', f.mode, data.length),
      body: [data] as unknown as AsyncIterable<Buffer>,
    };
  }
  for (const l of base.symlinks) {
    yield { header: header(l.path.slice(1), 'symlink', 0o777, 0, l.target), body: (async function* () {})() };
  }
}

/** A layer without a size hint (a local build's mmdebstrap stream) spooled to `path` (bounded by the budget) so it can be sized and read again. */
async function spool(layer: LayerInput, path: string, maxBytes: number): Promise<LayerInput> {
  const { stream, finished } = await layer.open();
  const budget = new ByteBudget(
    maxBytes,
    'the image content',
    'a bigger image needs a larger max_unpacked_size in config.toml',
  );
  await Promise.all([pipeline(stream, budget.meter(layer.label), createWriteStream(path, { mode: 0o600 })), finished]);
  const { size } = await stat(path);
  return { label: layer.label, open: async () => ({ stream: createReadStream(path) }), sizeHint: async () => size };
}

/** The exact content of the layers from their tar headers: file bytes and entry count (a pass without writing). */
async function scanLayers(layers: readonly LayerInput[]): Promise<{ bytes: number; entries: number }> {
  let bytes = 0;
  let entries = 0;
  for (const l of layers) {
    const { stream, finished } = await l.open();
    for await (const e of readTar(stream, l.label)) {
      entries++;
      if (e.header.type === 'file') bytes += e.header.size;
    }
    await finished;
  }
  return { bytes, entries };
}

/** Writes the image of `layers` (bottom-up, as in the manifest) to `opts.image`. */
export async function writeRootfs(
  layers: readonly LayerInput[],
  opts: WriteRootfsOptions,
  ctx: OpContext,
  signal: AbortSignal,
): Promise<WrittenRootfs> {
  const ready: LayerInput[] = [];
  try {
    for (const [i, l] of layers.entries()) {
      const spooled = join(opts.scratch, `layer-${i}.tar`);
      ready.push(l.sizeHint === undefined ? await spool(l, spooled, opts.maxUnpackedBytes) : l);
    }
    if (opts.sizeBytes !== undefined) {
      return await attempt(ready, planFor(opts.sizeBytes), 'given', opts, ctx, signal).catch((e: unknown) => {
        if (!(e instanceof Ext4FullError)) throw e;
        throw tooSmall(opts.sizeBytes as number, undefined);
      });
    }
    const hints = await Promise.all(ready.map(async (l) => (await l.sizeHint?.()) ?? Number.NaN));
    const hinted = hints.reduce((a, b) => a + b, 0);
    if (Number.isFinite(hinted)) {
      const plan = planFor(defaultRootfsBytes(Math.min(hinted, opts.maxUnpackedBytes)));
      try {
        return await attempt(ready, plan, 'hint', opts, ctx, signal);
      } catch (e) {
        if (!(e instanceof Ext4FullError)) throw e;
      }
    }
    ctx.progress({ stage: 'layers', message: 'sizing the image from the tar headers' });
    const scan = await scanLayers(ready);
    return await attempt(ready, planFor(defaultRootfsBytes(scan.bytes), scan.entries), 'scan', opts, ctx, signal).catch(
      (e: unknown) => {
        if (!(e instanceof Ext4FullError)) throw e;
        throw operationFailed(`the image did not fit the ${scan.bytes} bytes its layers declare: ${e.message}`);
      },
    );
  } catch (e) {
    // A full host disk (ENOSPC/EDQUOT, on the image or a spooled layer): name where, and the fix.
    const full = noSpaceError(e);
    if (full === undefined) throw e;
    throw operationFailed(`cannot write the image: ${full.message}`, {
      hint: `free space on the filesystem holding ${dirname(opts.image)} (see \`df -h\`) and retry`,
      cause: e,
    });
  } finally {
    for (const [i, l] of layers.entries())
      if (l.sizeHint === undefined) await rm(join(opts.scratch, `layer-${i}.tar`), { force: true });
  }
}

function tooSmall(sizeBytes: number, bytes: number | undefined): Error {
  const need = bytes === undefined ? 'the image content' : `${Math.round(bytes / 1048576)} MiB of files`;
  return badRequest(
    `size ${sizeBytes} bytes is too small for ${need}`,
    bytes === undefined
      ? 'use a bigger size or leave it out'
      : `use at least ${Math.ceil((bytes * 1.1) / 1048576) + 64}M`,
  );
}

async function attempt(
  layers: readonly LayerInput[],
  plan: Plan,
  planned: WrittenRootfs['planned'],
  opts: WriteRootfsOptions,
  ctx: OpContext,
  signal: AbortSignal,
): Promise<WrittenRootfs> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  let w: Ext4Writer;
  try {
    w = await Ext4Writer.create(opts.image, { sizeBytes: plan.sizeBytes, inodes: plan.inodes, label: 'rootfs', now });
  } catch (e) {
    await rm(opts.image, { force: true });
    if (planned === 'given') throw tooSmall(plan.sizeBytes, undefined);
    throw e;
  }
  let done = false;
  try {
    const seed = new SeedCapture();
    const links = new Map<string, string>();
    const osRelease = new Map<string, Buffer[]>();
    const merger = new LayerMerger(w, {
      skip: isBuildTimeSecret,
      signal,
      now,
      tap: (rel, h, linkTarget) => {
        if (h.type === 'symlink') links.set(rel, h.linkname);
        const seedSink = seed.tap(rel, h, linkTarget);
        if (
          h.type !== 'file' ||
          linkTarget !== undefined ||
          !rel.endsWith('os-release') ||
          h.size > MAX_OS_RELEASE_BYTES
        )
          return seedSink;
        const chunks: Buffer[] = [];
        osRelease.set(rel, chunks);
        return (c) => {
          chunks.push(Buffer.from(c));
          seedSink?.(c);
        };
      },
    });
    await merger.applyLayer(assetEntries(now), 'the guest assets');
    const budget = new ByteBudget(
      opts.maxUnpackedBytes,
      'the image content',
      'a bigger image needs a larger max_unpacked_size in config.toml',
    );
    for (let i = layers.length - 1; i >= 0; i--) {
      const layer = layers[i] as LayerInput;
      ctx.progress({
        stage: 'layers',
        message: `writing ${layer.label}`,
        current: layers.length - 1 - i,
        total: layers.length,
      });
      const { stream, finished } = await layer.open();
      // Bytes and rate while it runs (a build's tar has no known length: no percentage).
      const counted = meteredLayer(stream, layer.label, (message) =>
        ctx.progress({ stage: 'layers', message, current: layers.length - 1 - i, total: layers.length }),
      );
      const metered: Readable = counted.pipe(budget.meter(layer.label));
      counted.on('error', (e: Error) => metered.destroy(e));
      const reread = async function* (): AsyncGenerator<TarEntry> {
        const again = await layer.open();
        yield* readTar(again.stream, layer.label);
        await again.finished;
      };
      await Promise.all([merger.applyLayer(readTar(metered, layer.label), layer.label, reread), finished]).catch(
        (e: unknown) => {
          stream.destroy();
          throw e;
        },
      );
    }
    const { meta, bytes } = merger.result();
    const rootMeta = meta.get('root');
    if (rootMeta !== undefined && rootMeta.type !== 'dir') {
      throw badRequest(
        `the image's /root is a ${rootMeta.type}, not a directory`,
        'VMs mount their work disk at /root; rebuild the image with /root as a plain directory',
      );
    }
    if (planned === 'given' && plan.sizeBytes < bytes * 1.05 + 64 * 1048576) throw tooSmall(plan.sizeBytes, bytes);
    // Mount points banger-init (or systemd) needs and the image lacks; one that is there as a link or file stays as it is.
    for (const d of MOUNT_POINTS) {
      if (!meta.has(d.path.slice(1)))
        w.mkdir(d.path.slice(1), { mode: d.mode, uid: 0, gid: 0, mtime: { sec: now, nsec: 0 } });
    }
    ctx.progress({ stage: 'image', message: `finishing ext4 (${Math.round(bytes / 1048576)} MiB of files)` });
    await w.finish();
    done = true;
    const readlink = (rel: string): string => links.get(rel) ?? '';
    const has = (...paths: string[]): boolean => paths.some((p) => isImageFile(p, meta, readlink));
    let distro = 'unknown';
    for (const p of ['etc/os-release', 'usr/lib/os-release']) {
      const r = resolveImagePath(p, meta, readlink);
      const text =
        r && osRelease.get(r.rel) ? Buffer.concat(osRelease.get(r.rel) as Buffer[]).toString('utf8') : undefined;
      const id = text && /^ID="?([^"\n]+)"?$/m.exec(text)?.[1];
      if (id) {
        distro = id;
        break;
      }
    }
    return {
      sizeBytes: plan.sizeBytes,
      contentBytes: bytes,
      distro,
      hasSshd: has('usr/sbin/sshd', 'sbin/sshd'),
      // Without systemd, banger-init stays PID 1 and runs the agent (guest-src/banger-init.c).
      hasSystemd: has('lib/systemd/systemd', 'usr/lib/systemd/systemd'),
      seed,
      planned,
    };
  } finally {
    if (!done) {
      await w.abort();
      await rm(opts.image, { force: true });
    }
  }
}
