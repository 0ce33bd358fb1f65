import { createWriteStream } from 'node:fs';
import { open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack, type Pack } from 'tar-stream';
import { z } from 'zod';
import { CompressStream } from 'zstd-napi';
import { extractStrictTarZst, refusedEntryType, type StrictEntry } from '../archive/strict-tarzst.js';
import { drain, type TarEntry } from '../archive/tar-entry.js';
import { AppError, badRequest, cancelled, errorMessage, isAbortError, operationFailed } from '../errors.js';
import { HashingStream } from '../net/hashing.js';
import { storedRuntimeConfig, type ImageRuntimeConfig } from '../services/image/oci-config.js';

/*
 * Image bundles (SPEC §6.2): a tar.zst holding exactly rootfs.ext4 and
 * manifest.json, written by `banger image export` and read by
 * `banger image pull <url> --sha256 …` or a catalog entry with a tarball.
 */

export interface BundleManifest {
  format: 1;
  name: string;
  distro: string;
  arch: 'x86_64';
  kernel_ref: string;
  rootfs_bytes: number;
  assets_version: number;
  created_at: string;
  /** The image's OCI runtime config as its manifest.json records it (absent: none recorded). */
  config?: ImageRuntimeConfig;
  /** Whether the rootfs has sshd / systemd (absent: unknown, as in bundles from before these keys). */
  has_sshd?: boolean;
  has_systemd?: boolean;
}

export const BUNDLE_MANIFEST = 'manifest.json';
export const BUNDLE_ROOTFS = 'rootfs.ext4';

const FILE_MODE = 0o644;
const ZSTD_LEVEL = 3;
/** Read size for the rootfs: large reads keep per-chunk overhead low on multi-GiB images. */
const READ_CHUNK = 1024 * 1024;
const MAX_ZSTD_WORKERS = 4;
/** A manifest is a few hundred bytes plus the image's runtime config (bounded like the image's own manifest.json). */
const MAX_MANIFEST_BYTES = 1024 * 1024;
/** Zero blocks of this size (aligned in the file) are left as holes in the extracted rootfs. */
const SPARSE_BLOCK = 4096;
const ZERO_BLOCK = Buffer.alloc(SPARSE_BLOCK);
const TEXT_MAX = 256;
const SHA256_RE = /^[0-9a-f]{64}$/i;

/** A sha256 pin as `--sha256` takes it: 64 hexadecimal digits. */
export function isSha256Hex(s: string): boolean {
  return SHA256_RE.test(s);
}

const LAYOUT_HINT = `a bundle holds exactly ${BUNDLE_ROOTFS} and ${BUNDLE_MANIFEST} at the archive root; re-create it with \`banger image export\``;
const UNSAFE_HINT = 'the bundle contains an entry banger will not extract; re-create it with `banger image export`';
const MANIFEST_HINT = `${BUNDLE_MANIFEST} must be a JSON object with format (1), name, distro, arch ("x86_64"), kernel_ref, rootfs_bytes, assets_version and created_at, optionally config, has_sshd and has_systemd`;

const hasControlChar = (text: string): boolean => /[\u0000-\u001f\u007f]/.test(text);

// ---------------------------------------------------------------------------
// Manifest

const text = z
  .string()
  .min(1, 'must be a non-empty string')
  .max(TEXT_MAX, `must be at most ${TEXT_MAX} characters`)
  .refine((v) => !hasControlChar(v), 'must not contain control characters');

const manifestSchema = z.strictObject({
  format: z.literal(1),
  name: text,
  distro: text,
  arch: z.literal('x86_64'),
  kernel_ref: text,
  rootfs_bytes: z.number().int().positive(),
  assets_version: z.number().int().nonnegative(),
  created_at: z.iso.datetime({ offset: true }),
  // Checked by storedRuntimeConfig below: the same checks and bounds as at pull time.
  config: z.unknown().optional(),
  has_sshd: z.boolean().optional(),
  has_systemd: z.boolean().optional(),
});

const MANIFEST_KEYS = Object.keys(manifestSchema.shape);

/**
 * Parses and validates manifest.json. The schema is strict: unknown keys are
 * rejected naming the key. Every problem is a badRequest('bundle manifest: …').
 */
export function parseBundleManifest(text: string): BundleManifest {
  const fail = (message: string, hint = MANIFEST_HINT): never => {
    throw badRequest(`bundle manifest: ${message}`, hint);
  };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return fail(`not valid JSON: ${errorMessage(err)}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return fail('must be a JSON object');
  // A newer format may add keys: say the format is the problem rather than the keys.
  const format = (data as Record<string, unknown>).format;
  if (format !== undefined && format !== 1) {
    return fail(
      `unsupported format ${JSON.stringify(format)} (this banger reads format 1)`,
      'the bundle was made by a newer banger; upgrade banger to pull it',
    );
  }
  const r = manifestSchema.safeParse(data);
  if (r.success) {
    const { config, ...rest } = r.data;
    if (config === undefined) return rest;
    return { ...rest, config: storedRuntimeConfig(config, `bundle manifest`) };
  }
  const issues = r.error.issues;
  const unknown = issues.find((i) => i.code === 'unrecognized_keys');
  if (unknown !== undefined && unknown.code === 'unrecognized_keys') {
    const keys = unknown.keys.map((k) => JSON.stringify(k)).join(', ');
    return fail(`unknown key${unknown.keys.length > 1 ? 's' : ''} ${keys}`, `known keys: ${MANIFEST_KEYS.join(', ')}`);
  }
  const first = issues[0];
  if (first === undefined) return fail('invalid manifest');
  const where = first.path.length > 0 ? first.path.map(String).join('.') : 'manifest';
  const missing =
    first.code === 'invalid_type' && first.path.length === 1 && !(String(first.path[0]) in (data as object));
  return fail(missing ? `${where} is required` : `${where}: ${first.message}`);
}

// ---------------------------------------------------------------------------
// Writing

/** zstd level 3, on worker threads when the binding was built with them (it normally is). */
function newCompressor(): CompressStream {
  const workers = Math.min(MAX_ZSTD_WORKERS, Math.max(1, availableParallelism() - 1));
  try {
    return new CompressStream({ compressionLevel: ZSTD_LEVEL, nbWorkers: workers });
  } catch {
    // Built without ZSTD_MULTITHREAD: nbWorkers > 0 is refused.
    return new CompressStream({ compressionLevel: ZSTD_LEVEL });
  }
}

function entryDone(p: Pack, header: Parameters<Pack['entry']>[0], body: Buffer): Promise<void> {
  return new Promise((res, rej) => {
    p.entry(header, body, (err) => (err ? rej(err) : res()));
  });
}

function writeError(err: unknown, out: string, signal: AbortSignal | undefined): AppError {
  if (err instanceof AppError) return err;
  if (signal?.aborted || isAbortError(err)) return cancelled();
  return operationFailed(`cannot write bundle ${out}: ${errorMessage(err)}`, { cause: err });
}

/**
 * Writes `out` (tar.zst, zstd level 3, on worker threads when available):
 * manifest.json first, then rootfs.ext4 streamed from disk in 1 MiB reads
 * (holes of a sparse rootfs read as zeros, which zstd squeezes to almost
 * nothing). Entry mtimes are the manifest's created_at, so the same inputs
 * give the same bundle. The bytes go to `${out}.partial` (a stale one is
 * replaced), which is fsynced and renamed over `out` (replacing it) at the end;
 * on any error the partial file is removed.
 *
 * The manifest is validated first (badRequest 'bundle manifest: …') and its
 * rootfs_bytes must equal the size of `rootfs`, a regular file. A missing
 * rootfs or a write failure is operationFailed; an abort rejects as
 * 'cancelled'. Returns the sha256 (lowercase hex) and size of the bundle file.
 */
export async function writeBundle(
  rootfs: string,
  manifest: BundleManifest,
  out: string,
  signal?: AbortSignal,
): Promise<{ sha256: string; bytes: number }> {
  if (signal?.aborted) throw cancelled();
  const checked = parseBundleManifest(JSON.stringify(manifest));
  const manifestBody = Buffer.from(`${JSON.stringify(checked, null, 2)}\n`);
  if (manifestBody.length > MAX_MANIFEST_BYTES)
    throw badRequest(
      `bundle manifest is ${manifestBody.length} bytes, at most ${MAX_MANIFEST_BYTES} allowed`,
      'the image config is too large to export',
    );
  // Entry times come from the manifest, so the same inputs give the same bundle.
  const mtime = new Date(checked.created_at);

  let src: FileHandle;
  try {
    src = await open(rootfs, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw operationFailed(`cannot open rootfs ${rootfs}: ${code === 'ENOENT' ? 'no such file' : errorMessage(err)}`, {
      cause: err,
    });
  }
  const partial = `${out}.partial`;
  let started = false;
  try {
    const st = await src.stat();
    if (!st.isFile()) throw badRequest(`rootfs ${rootfs} is not a regular file`);
    if (st.size !== checked.rootfs_bytes) {
      throw badRequest(
        `bundle manifest says rootfs_bytes ${checked.rootfs_bytes}, but ${rootfs} has ${st.size} bytes`,
        'set rootfs_bytes to the size of the rootfs file',
      );
    }
    if (signal?.aborted) throw cancelled();

    const tar = pack();
    const compressor = newCompressor();
    const hasher = new HashingStream();
    const feed = async (): Promise<void> => {
      await entryDone(
        tar,
        { name: BUNDLE_MANIFEST, type: 'file', mode: FILE_MODE, mtime, size: manifestBody.length },
        manifestBody,
      );
      const entry = tar.entry({ name: BUNDLE_ROOTFS, type: 'file', mode: FILE_MODE, mtime, size: st.size });
      // Exactly st.size bytes, so a file that grows meanwhile cannot overrun the tar header; one that shrinks
      // fails the entry with 'Size mismatch'. The read stream closes `src` when it is done or destroyed.
      try {
        await pipeline(src.createReadStream({ start: 0, end: st.size - 1, highWaterMark: READ_CHUNK }), entry);
      } catch (err) {
        if (err instanceof Error && err.message === 'Size mismatch') {
          throw operationFailed(
            `rootfs ${rootfs} changed size while it was being exported (expected ${st.size} bytes)`,
            {
              hint: 'stop whatever is writing to the image file and retry',
            },
          );
        }
        throw err;
      }
      tar.finalize();
    };
    const feeding = feed().catch((err: unknown) => {
      tar.destroy(err instanceof Error ? err : new Error(String(err)));
      throw err;
    });
    started = true;
    const piping = pipeline(
      tar,
      compressor,
      hasher,
      createWriteStream(partial, { flags: 'w', mode: FILE_MODE }),
      signal === undefined ? {} : { signal },
    );
    const [piped, fed] = await Promise.allSettled([piping, feeding]);
    // An AppError from the feeder (the rootfs changed) explains the failure; otherwise the pipeline's error
    // is the cause and the feeder only saw its streams torn down.
    if (fed.status === 'rejected' && fed.reason instanceof AppError) throw fed.reason;
    if (piped.status === 'rejected') throw piped.reason;
    if (fed.status === 'rejected') throw fed.reason;
    if (signal?.aborted) throw cancelled();

    // fsync is per inode: a second descriptor flushes what the stream wrote.
    const fh = await open(partial, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(partial, out);
    return { sha256: hasher.digest(), bytes: hasher.bytes() };
  } catch (err) {
    if (started) await rm(partial, { force: true }).catch(() => undefined);
    throw writeError(err, out, signal);
  } finally {
    await src.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------
// Reading

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Writes `buf` at file offset `pos`, skipping blocks (aligned to SPARSE_BLOCK
 * in the file) that are all zeros: a fresh file reads zeros there anyway, so
 * the holes of a sparse rootfs stay holes.
 */
async function writeSparse(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  let run = -1;
  let i = 0;
  while (i < buf.length) {
    const end = Math.min(buf.length, i + SPARSE_BLOCK - ((pos + i) % SPARSE_BLOCK));
    const zero = buf.subarray(i, end).equals(ZERO_BLOCK.subarray(0, end - i));
    if (!zero && run < 0) run = i;
    if (zero && run >= 0) {
      await writeAll(fh, buf.subarray(run, i), pos + run);
      run = -1;
    }
    i = end;
  }
  if (run >= 0) await writeAll(fh, buf.subarray(run), pos + run);
}

class BundleExtractor {
  readonly #dest: string;
  readonly #label: string;
  readonly #onManifest: ((m: BundleManifest) => void) | undefined;
  readonly #seen = new Set<string>();
  manifestText: string | undefined;
  rootfsBytes: number | undefined;

  constructor(dest: string, label: string, onManifest?: (m: BundleManifest) => void) {
    this.#dest = resolve(dest);
    this.#label = label;
    this.#onManifest = onManifest;
  }

  get rootfsPath(): string {
    return join(this.#dest, BUNDLE_ROOTFS);
  }

  async apply({ entry, rel, type, unsafe, unexpected }: StrictEntry): Promise<void> {
    const label = this.#label;
    // 'tar -C dir -c .' adds './': it creates nothing, so it is tolerated.
    if (rel === '') {
      if (type !== 'directory') throw unsafe('entry replaces the archive root');
      return drain(entry);
    }
    // Only regular files are extracted.
    if (type === 'symlink') throw unsafe(`symlink to ${JSON.stringify(entry.header.linkname ?? '')}`);
    if (type === 'directory') throw unexpected('directory');
    const refused = refusedEntryType(type);
    if (refused !== undefined) throw unsafe(refused);
    if (rel !== BUNDLE_MANIFEST && rel !== BUNDLE_ROOTFS) throw unexpected();
    if (this.#seen.has(rel)) throw unsafe('duplicate entry');
    this.#seen.add(rel);

    if (rel === BUNDLE_MANIFEST) {
      const size = entry.header.size ?? 0;
      if (size > MAX_MANIFEST_BYTES) {
        throw badRequest(
          `${BUNDLE_MANIFEST} in bundle ${label} is too large: ${size} bytes, at most ${MAX_MANIFEST_BYTES} allowed`,
          LAYOUT_HINT,
        );
      }
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      // 'wx' is O_CREAT|O_EXCL: never follows or replaces anything already there.
      await writeFile(join(this.#dest, BUNDLE_MANIFEST), body, { flag: 'wx', mode: FILE_MODE });
      this.manifestText = body.toString('utf8');
      // Not yet covered by the sha256 (checked at the end), but enough to refuse early, before the
      // rootfs streams in: a manifest that does not parse is reported after the sha256 check instead.
      if (this.#onManifest !== undefined) {
        let manifest: BundleManifest | undefined;
        try {
          manifest = parseBundleManifest(this.manifestText);
        } catch {
          manifest = undefined;
        }
        if (manifest !== undefined) this.#onManifest(manifest);
      }
      return;
    }
    this.rootfsBytes = await this.#writeRootfs(entry);
  }

  async #writeRootfs(entry: TarEntry): Promise<number> {
    const fh = await open(this.rootfsPath, 'wx', FILE_MODE);
    let pos = 0;
    try {
      for await (const chunk of entry) {
        const buf = chunk as Buffer;
        await writeSparse(fh, buf, pos);
        pos += buf.length;
      }
      // Trailing holes: give the file its full length.
      await fh.truncate(pos);
    } finally {
      await fh.close();
    }
    return pos;
  }
}

/**
 * Streams a bundle (`input`, tar.zst bytes) through a HashingStream, zstd
 * decompression and tar extraction into `dest` (an existing empty directory),
 * leaving dest/manifest.json and dest/rootfs.ext4 (zero blocks as holes).
 *
 * Exactly those two regular files are allowed, in either order, optionally
 * with a leading './' and a './' root entry. Any other name, directories,
 * symlinks, hardlinks, devices, fifos, duplicates, '..' components and
 * absolute paths are refused as badRequest naming the entry, before anything
 * is written for it.
 *
 * The sha256 covers the compressed bytes and is checked once the input ended
 * (mismatch → badRequest 'sha256 mismatch for LABEL: expected X, got Y'); only
 * then are a missing file, the manifest and its rootfs_bytes checked. Files
 * are already on disk when a late check fails: the caller removes `dest` on
 * any error. Corrupt or truncated input is operationFailed('bundle LABEL is
 * truncated or corrupt: …'); errors of `input` (e.g. a truncated download)
 * are passed on; an abort rejects as 'cancelled'. On failure every stream
 * here is destroyed before the promise rejects.
 */
export async function readBundle(
  input: Readable,
  dest: string,
  expectedSha256: string,
  label: string,
  signal?: AbortSignal,
  /** Called with the manifest as soon as it is read (before the rootfs when it comes first); throwing stops the extraction. */
  onManifest?: (m: BundleManifest) => void,
): Promise<{ manifest: BundleManifest; rootfs: string; bytes: number }> {
  // An abort wins over a malformed pin: extractStrictTarZst rejects it as 'cancelled'.
  if (!signal?.aborted && !SHA256_RE.test(expectedSha256)) {
    input.destroy();
    throw badRequest(
      `invalid sha256 for ${label}: ${JSON.stringify(expectedSha256)}`,
      'a sha256 is 64 hexadecimal digits',
    );
  }
  const out = new BundleExtractor(dest, label, onManifest);
  const { bytes } = await extractStrictTarZst(input, (entry) => out.apply(entry), {
    archive: `bundle ${label}`,
    entryScope: `bundle ${label}`,
    unsafeHint: UNSAFE_HINT,
    layoutHint: LAYOUT_HINT,
    dest,
    label,
    expectedSha256,
    mismatchHint: 'the file changed or the pinned sha256 is wrong',
    signal,
  });
  if (out.manifestText === undefined) throw badRequest(`bundle ${label} holds no ${BUNDLE_MANIFEST}`, LAYOUT_HINT);
  if (out.rootfsBytes === undefined) throw badRequest(`bundle ${label} holds no ${BUNDLE_ROOTFS}`, LAYOUT_HINT);
  const manifest = parseBundleManifest(out.manifestText);
  if (manifest.rootfs_bytes !== out.rootfsBytes) {
    throw badRequest(
      `bundle ${label}: ${BUNDLE_MANIFEST} says rootfs_bytes ${manifest.rootfs_bytes}, but ${BUNDLE_ROOTFS} has ${out.rootfsBytes} bytes`,
      LAYOUT_HINT,
    );
  }
  return { manifest, rootfs: out.rootfsPath, bytes };
}
