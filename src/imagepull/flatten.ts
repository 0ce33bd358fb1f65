import { createWriteStream, readdirSync } from 'node:fs';
import { chmod, lchown, link, mkdir, readdir, rm, symlink, unlink, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { drain, lstatOrNull, normalizeEntryPath, type TarEntry } from '../archive/tar-entry.js';
import { AppError, badRequest, noSpaceError, operationFailed } from '../errors.js';
import {
  childOf,
  depthOf,
  dirnameOf,
  hostMode,
  metaOf,
  mtimeOf,
  PERM_MASK,
  whiteoutOf,
  type EntryMeta,
  type RawHeader,
  type Reject,
  type Whiteout,
} from './flatten-entry.js';

// Entry names are checked in archive/tar-entry.ts, shared with the kernel tarball and bundle extractors.
export { normalizeEntryPath, type NormalizedPath } from '../archive/tar-entry.js';
export { hostMode, whiteoutOf, type EntryMeta, type Whiteout } from './flatten-entry.js';

export interface FlattenOptions {
  /** true when the process is root: then chown/chmod the extracted files for real (lchown for symlinks). */
  applyOwnership: boolean;
  /** paths (relative, no leading slash, e.g. 'etc/ssh/ssh_host_rsa_key') for which predicate returns true are skipped entirely. */
  skip?: (relPath: string) => boolean;
  signal?: AbortSignal;
}

export interface FlattenResult {
  /** Metadata of every path currently present in the tree, keyed by relative path without leading './' or '/', e.g. 'usr/bin/sudo'. The root itself is not included. */
  meta: Map<string, EntryMeta>;
  /** Entries not created on the host (device nodes, fifos), as "layer: path (type)" strings. */
  skipped: string[];
  /** Sum of regular-file sizes written. */
  bytes: number;
}

const UNSAFE_HINT = 'the image contains a path banger will not extract; rebuild it without that entry';
const IMPLICIT_DIR: EntryMeta = { uid: 0, gid: 0, mode: 0o755, type: 'dir' };

const cancelled = (): AppError => new AppError('cancelled', 'operation cancelled');

async function* counted(source: AsyncIterable<unknown>, onChunk: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    const buf = chunk as Buffer;
    onChunk(buf.length);
    yield buf;
  }
}

function destroyInput(stream: NodeJS.ReadableStream | Readable): void {
  if ('destroy' in stream && typeof stream.destroy === 'function') stream.destroy();
}

function asAppError(err: unknown, what: string, root: string): AppError {
  if (err instanceof AppError) return err;
  // A stream write's ENOSPC carries no path: name the tree being written.
  const full = noSpaceError(err);
  if (full !== undefined) {
    return operationFailed(`cannot extract ${what}: ${full.message}`, {
      hint: `free space on the filesystem holding ${root} (see \`df -h\`) and retry`,
      cause: err,
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return operationFailed(`cannot extract ${what}: ${message}`, { cause: err });
}

/**
 * Applies tar layers, oldest first, to a host directory. Every entry is
 * created only after each parent component was lstat-ed as a real directory,
 * and the final component is removed first and then created without
 * following links, so nothing is ever written through a symlink.
 * Layers must be applied one after the other, never concurrently.
 */
export class Flattener {
  readonly #root: string;
  readonly #opts: FlattenOptions;
  readonly #meta = new Map<string, EntryMeta>();
  readonly #skipped: string[] = [];
  #bytes = 0;
  /** Hardlink path → the path whose inode it shares (its meta type is 'file'). */
  readonly #linkOf = new Map<string, string>();
  /** The reverse of #linkOf: primary path → its hardlinks, so removing a file costs only its own links. */
  readonly #linksTo = new Map<string, Set<string>>();
  /** Paths created by the current layer: its whiteouts only hide lower layers. */
  #layerPaths = new Set<string>();
  /** Directories of the current layer whose mode (and mtime) is applied when it ends. */
  #pendingDirs = new Map<string, Date | undefined>();
  #busy = false;

  #rootChecked = false;

  constructor(root: string, opts: FlattenOptions) {
    this.#root = resolve(root);
    this.#opts = opts;
  }

  /** Applies one layer; `layerName` is used in error messages. Resolves when the stream ends. */
  async applyLayer(stream: NodeJS.ReadableStream | Readable, layerName: string): Promise<void> {
    if (this.#busy) throw new Error('Flattener.applyLayer called while another layer is being applied');
    const { signal } = this.#opts;
    if (signal?.aborted) throw cancelled();
    if (!this.#rootChecked) {
      // #meta is the record of the tree, so the tree must start empty.
      if (readdirSync(this.#root).length > 0) throw new Error(`Flattener root ${this.#root} is not empty`);
      this.#rootChecked = true;
    }
    this.#busy = true;
    this.#layerPaths = new Set();
    this.#pendingDirs = new Map();
    const ex = extract();
    let inputError: Error | undefined;
    const onInputError = (err: unknown): void => {
      inputError = err instanceof Error ? err : new Error(String(err));
      ex.destroy(inputError);
    };
    const onAbort = (): void => {
      ex.destroy(cancelled());
      destroyInput(stream);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.on('error', onInputError);
    try {
      stream.pipe(ex);
      for await (const entry of ex) {
        if (signal?.aborted) throw cancelled();
        await this.#applyEntry(entry, layerName);
      }
      await this.#finishDirs();
    } catch (err) {
      destroyInput(stream);
      // The input's own error explains a failure better than the 'stream destroyed' it causes downstream.
      throw signal?.aborted ? cancelled() : asAppError(inputError ?? err, layerName, this.#root);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      stream.removeListener('error', onInputError);
      this.#busy = false;
    }
  }

  result(): FlattenResult {
    return { meta: this.#meta, skipped: this.#skipped, bytes: this.#bytes };
  }

  #host(rel: string): string {
    return join(this.#root, rel);
  }

  async #applyEntry(entry: TarEntry, layerName: string): Promise<void> {
    const header: RawHeader = entry.header;
    const reject: Reject = (reason) =>
      badRequest(`unsafe entry in ${layerName}: ${JSON.stringify(header.name)} (${reason})`, UNSAFE_HINT);
    const norm = normalizeEntryPath(header.name);
    if ('reason' in norm) throw reject(norm.reason);
    try {
      const consumed = await this.#dispatch(entry, header, norm.rel, layerName, reject);
      if (!consumed) await drain(entry);
    } catch (err) {
      throw asAppError(err, `${JSON.stringify(header.name)} from ${layerName}`, this.#root);
    }
  }

  /** Handles one entry; true when it consumed the entry's data itself. */
  async #dispatch(
    entry: TarEntry,
    header: RawHeader,
    rel: string,
    layerName: string,
    reject: Reject,
  ): Promise<boolean> {
    if (rel === '') {
      if (header.type !== 'directory') throw reject('entry replaces the root');
      return false;
    }
    const whiteout = whiteoutOf(rel);
    if (whiteout !== undefined) {
      await this.#applyWhiteout(whiteout, reject);
      return false;
    }
    if (this.#opts.skip?.(rel) === true) return false;
    switch (header.type) {
      case 'file':
      case 'contiguous-file':
        await this.#writeFile(entry, rel, this.#entryMeta(header, 'file', reject), mtimeOf(header), reject);
        return true;
      case 'directory':
        await this.#makeDir(rel, this.#entryMeta(header, 'dir', reject), mtimeOf(header), reject);
        return false;
      case 'symlink':
        await this.#makeSymlink(rel, header.linkname ?? '', this.#entryMeta(header, 'symlink', reject), reject);
        return false;
      case 'link':
        await this.#makeHardlink(rel, header.linkname ?? '', reject);
        return false;
      case 'character-device':
      case 'block-device':
      case 'fifo':
        await this.#skipEntry(rel, `${layerName}: ${rel} (${header.type})`, reject);
        return false;
      default:
        await this.#skipEntry(rel, `${layerName}: ${rel} (unsupported type ${header.type ?? 'unknown'})`, reject);
        return false;
    }
  }

  #entryMeta(header: RawHeader, type: EntryMeta['type'], reject: Reject): EntryMeta {
    const meta = metaOf(header, type);
    if ('reason' in meta) throw reject(meta.reason);
    return meta;
  }

  /**
   * Checks that every component of `dir` is a real directory. Missing ones are
   * created (as root-owned 0755 in meta) when `create`, else the result is false.
   */
  async #resolveDir(dir: string, reject: Reject, create: boolean): Promise<boolean> {
    if (dir === '') return true;
    const parts = dir.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      // Every path in the tree was made by this Flattener and is in #meta, so
      // #meta answers what lstat would, without a syscall per component.
      const m = this.#meta.get(rel);
      if (m === undefined) {
        if (!create) return false;
        await this.#mkdirImplicit(rel);
      } else if (m.type === 'symlink') {
        throw reject('path goes through a symlink');
      } else if (m.type !== 'dir') {
        throw reject('parent is not a directory');
      }
    }
    return true;
  }

  async #mkdirImplicit(rel: string): Promise<void> {
    await mkdir(this.#host(rel), { mode: 0o700 });
    await this.#own(rel, IMPLICIT_DIR);
    this.#record(rel, { ...IMPLICIT_DIR });
    this.#pendingDirs.set(rel, undefined);
  }

  /**
   * Removes whatever exists at `rel` (recursively), from disk and meta. A
   * directory's descendants are found by walking it on disk (the tree mirrors
   * #meta, and the walk does not follow symlinks), so the cost is the size of
   * the subtree, not of the whole image.
   */
  async #remove(rel: string): Promise<void> {
    const type = this.#meta.get(rel)?.type;
    if (type === 'dir') {
      for (const child of await readdir(this.#host(rel), { recursive: true })) this.#forget(`${rel}/${child}`);
      await rm(this.#host(rel), { recursive: true, force: true });
    } else if (type !== undefined) {
      // Never a directory here (#meta mirrors the tree), so one unlink does it.
      await unlink(this.#host(rel));
    }
    this.#forget(rel);
  }

  /** Drops one path from meta; a removed file's surviving hardlinks elect a new primary. */
  #forget(rel: string): void {
    const meta = this.#meta.get(rel);
    this.#meta.delete(rel);
    this.#pendingDirs.delete(rel);
    const primary = this.#linkOf.get(rel);
    if (primary !== undefined) {
      this.#linkOf.delete(rel);
      this.#linksTo.get(primary)?.delete(rel);
      return;
    }
    if (meta?.type !== 'file') return;
    const links = this.#linksTo.get(rel);
    this.#linksTo.delete(rel);
    if (links === undefined || links.size === 0) return;
    const [heir, ...rest] = links;
    if (heir === undefined) return;
    this.#linkOf.delete(heir);
    const heirMeta = this.#meta.get(heir);
    if (heirMeta !== undefined) this.#meta.set(heir, { ...heirMeta, type: 'file' });
    for (const l of rest) this.#linkOf.set(l, heir);
    if (rest.length > 0) this.#linksTo.set(heir, new Set(rest));
  }

  #record(rel: string, meta: EntryMeta): void {
    this.#meta.set(rel, meta);
    this.#layerPaths.add(rel);
  }

  /** Parents made real, then anything at `rel` removed unless it is a directory and `keepDir`. */
  async #prepare(rel: string, reject: Reject, keepDir: boolean): Promise<boolean> {
    await this.#resolveDir(dirnameOf(rel), reject, true);
    const m = this.#meta.get(rel);
    if (m === undefined) return false;
    if (keepDir && m.type === 'dir') return true;
    await this.#remove(rel);
    return false;
  }

  async #own(rel: string, meta: EntryMeta): Promise<void> {
    if (this.#opts.applyOwnership) await lchown(this.#host(rel), meta.uid, meta.gid);
  }

  async #writeFile(
    entry: TarEntry,
    rel: string,
    meta: EntryMeta,
    mtime: Date | undefined,
    reject: Reject,
  ): Promise<void> {
    await this.#prepare(rel, reject, false);
    const host = this.#host(rel);
    // 'wx' is O_CREAT|O_EXCL: it never follows a link planted at the final component.
    const count = (n: number): void => {
      this.#bytes += n;
    };
    await pipeline(counted(entry, count), createWriteStream(host, { flags: 'wx', mode: 0o600 }));
    // chown before chmod: chown clears setuid/setgid.
    await this.#own(rel, meta);
    await chmod(host, hostMode(meta.mode, false, this.#opts.applyOwnership));
    if (mtime !== undefined) await utimes(host, mtime, mtime);
    this.#record(rel, meta);
  }

  async #makeDir(rel: string, meta: EntryMeta, mtime: Date | undefined, reject: Reject): Promise<void> {
    const exists = await this.#prepare(rel, reject, true);
    if (!exists) await mkdir(this.#host(rel), { mode: 0o700 });
    await this.#own(rel, meta);
    this.#record(rel, meta);
    this.#pendingDirs.set(rel, mtime);
  }

  async #makeSymlink(rel: string, target: string, meta: EntryMeta, reject: Reject): Promise<void> {
    if (target === '') throw reject('empty symlink target');
    await this.#prepare(rel, reject, false);
    await symlink(target, this.#host(rel));
    await this.#own(rel, meta);
    this.#record(rel, meta);
  }

  async #makeHardlink(rel: string, linkname: string, reject: Reject): Promise<void> {
    const quoted = JSON.stringify(linkname);
    const norm = normalizeEntryPath(linkname);
    if ('reason' in norm) throw reject(`hardlink target ${quoted}: ${norm.reason}`);
    const target = norm.rel;
    if (target === '' || target === rel) throw reject(`hardlink target ${quoted} is the root or the entry itself`);
    if (this.#opts.skip?.(target) === true) return;
    const targetReject: Reject = (reason) => reject(`hardlink target ${quoted}: ${reason}`);
    const st = (await this.#resolveDir(dirnameOf(target), targetReject, false))
      ? await lstatOrNull(this.#host(target))
      : null;
    if (st === null || !st.isFile()) throw targetReject('not an existing regular file');
    const source = this.#meta.get(target) ?? { uid: st.uid, gid: st.gid, mode: st.mode & PERM_MASK, type: 'file' };
    await this.#prepare(rel, reject, false);
    await link(this.#host(target), this.#host(rel));
    this.#record(rel, { uid: source.uid, gid: source.gid, mode: source.mode, type: 'hardlink' });
    const primary = this.#linkOf.get(target) ?? target;
    this.#linkOf.set(rel, primary);
    const links = this.#linksTo.get(primary);
    if (links === undefined) this.#linksTo.set(primary, new Set([rel]));
    else links.add(rel);
  }

  /** An entry that is not materialised still replaces what lower layers had at its path. */
  async #skipEntry(rel: string, note: string, reject: Reject): Promise<void> {
    await this.#prepare(rel, reject, false);
    this.#skipped.push(note);
  }

  async #applyWhiteout(whiteout: Whiteout, reject: Reject): Promise<void> {
    switch (whiteout.kind) {
      case 'invalid':
        throw reject('invalid whiteout name');
      case 'ignored':
        return;
      case 'remove':
        if (
          !this.#layerPaths.has(whiteout.target) &&
          (await this.#resolveDir(dirnameOf(whiteout.target), reject, false))
        ) {
          await this.#remove(whiteout.target);
        }
        return;
      case 'opaque':
        if (await this.#resolveDir(whiteout.dir, reject, false)) await this.#clearLower(whiteout.dir);
        return;
    }
  }

  /** Removes everything under `dir` that lower layers put there, keeping this layer's entries. */
  async #clearLower(dir: string): Promise<void> {
    for (const name of await readdir(this.#host(dir))) {
      const child = childOf(dir, name);
      if (!this.#layerPaths.has(child)) await this.#remove(child);
      else if (this.#meta.get(child)?.type === 'dir') await this.#clearLower(child);
    }
  }

  /** Final directory modes and mtimes, deepest first, once their children are in place. */
  async #finishDirs(): Promise<void> {
    const dirs = [...this.#pendingDirs].sort(([a], [b]) => depthOf(b) - depthOf(a));
    for (const [rel, mtime] of dirs) {
      const meta = this.#meta.get(rel);
      const st = await lstatOrNull(this.#host(rel));
      if (meta?.type !== 'dir' || st?.isDirectory() !== true) continue;
      await chmod(this.#host(rel), hostMode(meta.mode, true, this.#opts.applyOwnership));
      if (mtime !== undefined) await utimes(this.#host(rel), mtime, mtime);
    }
    this.#pendingDirs = new Map();
  }
}
