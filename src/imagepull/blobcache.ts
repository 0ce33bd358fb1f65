import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError, badRequest, operationFailed } from '../errors.js';
import { HashingStream } from '../net/hashing.js';

/*
 * Content-addressed blob store: <dir>/<sha256 hex>. A blob is written to a
 * temp file in the same directory while being hashed and only renamed into
 * place once its digest checks out, so a file under its final name is always
 * complete and correct.
 */

const HEX64 = /^[a-f0-9]{64}$/;
const TMP_PREFIX = '.tmp-';

/** A blob source: a stream, or a function that opens one (called only if the blob is not cached and not already being fetched). */
export type BlobSource = Readable | (() => Promise<Readable>);

export interface PruneResult {
  blobs: number;
  bytes: number;
}

function hexOf(digest: string): string {
  const hex = digest.startsWith('sha256:') ? digest.slice('sha256:'.length) : undefined;
  if (hex === undefined || !HEX64.test(hex)) {
    throw badRequest(`invalid blob digest ${JSON.stringify(digest)}: expected sha256:<64 lowercase hex digits>`);
  }
  return hex;
}

/** A key of a keep-set: 'sha256:<hex>' or bare hex. */
function keepHex(entry: string): string {
  return entry.startsWith('sha256:') ? entry.slice('sha256:'.length) : entry;
}

function discard(source: BlobSource): void {
  if (typeof source !== 'function') {
    source.on('error', () => undefined);
    source.destroy();
  }
}

export class BlobCache {
  readonly dir: string;
  readonly #inflight = new Map<string, Promise<string>>();

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Where the blob lives (whether or not it is there yet). Throws badRequest for a malformed digest. */
  path(digest: string): string {
    return join(this.dir, hexOf(digest));
  }

  /** True when the blob is in the cache. */
  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.path(digest))).isFile();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /**
   * Stores a blob and returns its path. Already cached: returns at once (a
   * stream source is destroyed, a function source is not called). Already
   * being stored by another put: waits for that one (one download). Otherwise
   * streams into a temp file while hashing, fsyncs it, and renames it into place;
   * on a digest mismatch the temp file is deleted and an operationFailed
   * names the digest.
   */
  put(digest: string, source: BlobSource): Promise<string> {
    const hex = hexOf(digest);
    const pending = this.#inflight.get(hex);
    if (pending !== undefined) {
      discard(source);
      return pending;
    }
    const p = this.#store(digest, hex, source).finally(() => this.#inflight.delete(hex));
    this.#inflight.set(hex, p);
    return p;
  }

  async #store(digest: string, hex: string, source: BlobSource): Promise<string> {
    const final = join(this.dir, hex);
    if (await this.has(digest)) {
      discard(source);
      return final;
    }
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `${TMP_PREFIX}${hex}-${randomBytes(6).toString('hex')}`);
    try {
      const stream = typeof source === 'function' ? await source() : source;
      const counter = new HashingStream({
        check: (got, bytes) =>
          got === hex
            ? undefined
            : operationFailed(`blob ${digest} failed verification: its ${bytes} bytes hash to sha256:${got}`, {
                hint: 'the registry or a proxy served corrupt data; retry the pull',
              }),
      });
      // Opened before any byte flows, so the file exists when a failure removes it (a stream that
      // opens lazily can create it after the cleanup ran); fsync before close, so a renamed blob is
      // on disk, not only in the page cache.
      const fh = await open(tmp, 'wx', 0o644);
      // The stream owns the handle from here: it closes it (after the fsync of flush) when done or destroyed.
      await pipeline(stream, counter, fh.createWriteStream({ flush: true }));
      await rename(tmp, final);
      return final;
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      if (typeof source !== 'function') source.destroy();
      if (err instanceof AppError) throw err;
      throw operationFailed(`cannot store blob ${digest}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Deletes cached blobs whose digest is not in `keep` ('sha256:<hex>' or hex),
   * and temp files left by interrupted puts. With dryRun nothing is deleted.
   * Returns what was (or would be) removed. Files with other names are left alone.
   */
  async prune(keep: ReadonlySet<string>, dryRun: boolean): Promise<PruneResult> {
    const keepHexes = new Set([...keep].map(keepHex));
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { blobs: 0, bytes: 0 };
      throw err;
    }
    const result: PruneResult = { blobs: 0, bytes: 0 };
    for (const name of names) {
      let doomed = false;
      if (HEX64.test(name)) {
        doomed = !keepHexes.has(name) && !this.#inflight.has(name);
      } else if (name.startsWith(TMP_PREFIX)) {
        const hex = name.slice(TMP_PREFIX.length, TMP_PREFIX.length + 64);
        doomed = !this.#inflight.has(hex);
      }
      if (!doomed) continue;
      const full = join(this.dir, name);
      let size: number;
      try {
        const st = await stat(full);
        if (!st.isFile()) continue;
        size = st.size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      if (!dryRun) await rm(full, { force: true });
      result.blobs++;
      result.bytes += size;
    }
    return result;
  }
}
