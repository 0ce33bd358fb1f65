import { normalizeEntryPath } from '../archive/tar-entry.js';
import type { TarEntry, TarHeader } from '../archive/tar-reader.js';
import { AppError, badRequest, cancelled, errorMessage, noSpaceError } from '../errors.js';
import { Ext4FullError, type Attrs, type Ext4Writer } from '../ext4/writer/writer.js';
import { IMPLICIT_DIR, UNSAFE_HINT, dirnameOf, whiteoutOf, type EntryMeta, type Reject } from './tar-header.js';

/*
 * Image layers merged straight into an Ext4Writer, TOPMOST LAYER FIRST, so
 * nothing a higher layer replaces, removes (.wh.<name>) or hides (an opaque
 * directory, .wh..wh..opq) is ever written. The safety rules are the
 * Flattener's (flatten.ts): names normalised (no absolute paths, no '..', no
 * control characters), nothing through a symlink, a file where a directory is
 * needed refused, build-time secrets skipped, device nodes and fifos not made
 * (noted in `skipped`, as the Flattener does), the root entry's attributes
 * ignored. The byte budget (max_unpacked_size) meters the tar streams before
 * they reach the reader, as for the Flattener.
 *
 * Decisions of the top-down order (bottom-up, a later entry replaces an
 * earlier one; here the first one seen is final):
 * - A path declared by a higher layer wins; a lower layer's entry there is
 *   skipped, and a higher non-directory hides the lower one's whole subtree.
 * - Whiteouts and opaque markers hide only lower layers (as in flatten.ts).
 * - Parents a layer uses without declaring are made as root 0755 directories;
 *   a lower layer that declares one gives it its attributes, and a lower
 *   layer that has a non-directory there is refused ("parent is not a
 *   directory"/"path goes through a symlink"), as the Flattener refuses it.
 * - The same path twice in one layer: a directory takes the later attributes;
 *   anything else is refused (the earlier one is already written).
 * - Hard links are made to an earlier regular file of the same layer. A link
 *   to a file that a higher layer replaced or removed (its data was skipped)
 *   is written once the layer is done: the layer is read a second time
 *   (`reread`) and the target's data and attributes go to the first such
 *   link, the others link to it, as bottom-up extraction leaves them. Without
 *   `reread`, or for a link to a file of another layer, it is refused.
 * - `tap` sees every entry as it is written (final: top-down, the first seen
 *   wins), and may ask for a copy of a regular file's data.
 */

/** Sees an entry the merger writes (or a directory it gives attributes); may return a sink for a file's data. */
export type EntryTap = (rel: string, h: TarHeader, linkTarget?: string) => ((chunk: Buffer) => void) | undefined;

export interface MergeOptions {
  /** Relative paths (e.g. 'etc/ssh/ssh_host_rsa_key') that are skipped entirely. */
  skip?: (relPath: string) => boolean;
  signal?: AbortSignal;
  /** Seconds since the epoch for implicit directories' times. */
  now?: number;
  tap?: EntryTap;
}

export interface MergeResult {
  /** Every path in the image (relative, no leading '/'), as the Flattener records it. */
  meta: Map<string, EntryMeta>;
  /** Entries not made (device nodes, fifos, unknown types), as "layer: path (type)". */
  skipped: string[];
  /** Sum of regular-file sizes written. */
  bytes: number;
}

export class LayerMerger {
  readonly #w: Ext4Writer;
  readonly #opts: MergeOptions;
  readonly #meta = new Map<string, EntryMeta>();
  readonly #skipped: string[] = [];
  #bytes = 0;
  /** Paths declared by a layer (the layer's index, counted from the top) and whether as a directory. */
  readonly #declared = new Map<string, { layer: number; dir: boolean }>();
  /** Paths whited out, and opaque directories, of the layers above the current one. */
  readonly #removed = new Set<string>();
  readonly #opaque = new Set<string>();
  /** The current layer's own whiteouts (they take effect below it). */
  #pendingRemoved: string[] = [];
  #pendingOpaque: string[] = [];
  /** Regular files of the current layer that were not written (hidden or replaced from above). */
  #unwritten = new Set<string>();
  /** Hard links of the current layer to unwritten files: target → link paths, in tar order. */
  #pendingLinks = new Map<string, string[]>();
  #layer = -1;

  constructor(w: Ext4Writer, opts: MergeOptions = {}) {
    this.#w = w;
    this.#opts = opts;
  }

  /**
   * Applies one layer; call it for the topmost layer first. `reread` reads the
   * same layer again (only needed for hard links to files a higher layer hid).
   */
  async applyLayer(
    entries: AsyncIterable<TarEntry>,
    layerName: string,
    reread?: () => AsyncIterable<TarEntry>,
  ): Promise<void> {
    const { signal } = this.#opts;
    this.#layer++;
    this.#pendingRemoved = [];
    this.#pendingOpaque = [];
    this.#unwritten = new Set();
    this.#pendingLinks = new Map();
    const canReread = reread !== undefined;
    for await (const entry of entries) {
      if (signal?.aborted) throw cancelled();
      const h = entry.header;
      const reject: Reject = (reason) =>
        badRequest(`unsafe entry in ${layerName}: ${JSON.stringify(h.name)} (${reason})`, UNSAFE_HINT);
      try {
        await this.#entry(entry, reject, layerName, canReread);
      } catch (e) {
        // A full host disk is the host's problem, not the entry's: it passes through as it is.
        if (e instanceof AppError || e instanceof Ext4FullError || noSpaceError(e) !== undefined) throw e;
        throw reject(errorMessage(e));
      }
    }
    if (this.#pendingLinks.size > 0 && reread !== undefined) await this.#linkHidden(reread(), layerName);
    for (const p of this.#pendingRemoved) this.#removed.add(p);
    for (const p of this.#pendingOpaque) this.#opaque.add(p);
  }

  result(): MergeResult {
    return { meta: this.#meta, skipped: this.#skipped, bytes: this.#bytes };
  }

  /** True when a higher layer hides `rel` (whiteout, opaque ancestor, non-directory ancestor). */
  #hidden(rel: string): boolean {
    if (this.#removed.has(rel)) return true;
    for (let a = dirnameOf(rel); a !== ''; a = dirnameOf(a)) {
      if (this.#removed.has(a) || this.#opaque.has(a)) return true;
      const d = this.#declared.get(a);
      if (d !== undefined && d.layer < this.#layer && !d.dir) return true;
    }
    return this.#opaque.has('');
  }

  /** Second read of a layer: the data of hidden link targets, written at their first link. */
  async #linkHidden(entries: AsyncIterable<TarEntry>, layerName: string): Promise<void> {
    const pending = this.#pendingLinks;
    for await (const entry of entries) {
      if (this.#opts.signal?.aborted) throw cancelled();
      const h = entry.header;
      if (h.type !== 'file') continue;
      const norm = normalizeEntryPath(h.name);
      const links = 'rel' in norm ? pending.get(norm.rel) : undefined;
      if (links === undefined) continue;
      pending.delete((norm as { rel: string }).rel);
      const [first, ...rest] = links as [string, ...string[]];
      const sink = this.#opts.tap?.(first, h);
      await this.#w.writeFile(first, this.#attrs(h), h.size, sink ? teeBody(entry.body, sink) : entry.body);
      this.#bytes += h.size;
      this.#meta.set(first, this.#metaOf(h, 'hardlink'));
      for (const r of rest) {
        this.#w.link(r, first);
        this.#opts.tap?.(r, h, first);
        this.#meta.set(r, this.#metaOf(h, 'hardlink'));
      }
      if (pending.size === 0) break;
    }
    const [target, links] = [...pending][0] ?? [];
    if (target !== undefined) {
      throw badRequest(
        `unsafe entry in ${layerName}: ${JSON.stringify(links?.[0])} (hardlink target ${JSON.stringify(target)} is not a regular file of the layer)`,
        UNSAFE_HINT,
      );
    }
  }

  async #entry(entry: TarEntry, reject: Reject, layerName: string, canReread: boolean): Promise<void> {
    const h = entry.header;
    const norm = normalizeEntryPath(h.name);
    if ('reason' in norm) throw reject(norm.reason);
    const rel = norm.rel;
    if (rel === '') {
      if (h.type !== 'dir') throw reject('entry replaces the root');
      return;
    }
    const wh = whiteoutOf(rel);
    if (wh !== undefined) {
      if (wh.kind === 'invalid') throw reject('invalid whiteout name');
      if (wh.kind === 'remove') this.#pendingRemoved.push(wh.target);
      if (wh.kind === 'opaque') this.#pendingOpaque.push(wh.dir);
      return;
    }
    if (this.#opts.skip?.(rel) === true) return;
    const prior = this.#declared.get(rel);
    if (prior !== undefined && prior.layer === this.#layer) {
      if (prior.dir && h.type === 'dir') {
        this.#w.setDirAttrs(rel, this.#attrs(h));
        this.#meta.set(rel, this.#metaOf(h, 'dir'));
        this.#opts.tap?.(rel, h);
        return;
      }
      throw reject('the same path twice in one layer (only directories may repeat)');
    }
    if (prior !== undefined || this.#hidden(rel)) {
      if (h.type === 'file') this.#unwritten.add(rel);
      // Bottom-up, the entry's missing parents were made before a higher layer hid it; those still visible stay.
      this.#visibleParents(rel, reject);
      return;
    }
    this.#declared.set(rel, { layer: this.#layer, dir: h.type === 'dir' });
    const existing = this.#w.lookup(rel);
    if (existing !== undefined) {
      // Only an implicit parent of a higher layer's entries can be here.
      if (h.type !== 'dir')
        throw reject(h.type === 'symlink' ? 'path goes through a symlink' : 'parent is not a directory');
      this.#w.setDirAttrs(rel, this.#attrs(h));
      this.#meta.set(rel, this.#metaOf(h, 'dir'));
      this.#opts.tap?.(rel, h);
      return;
    }
    this.#parents(rel, reject);
    await this.#make(entry, rel, reject, layerName, canReread);
  }

  async #make(entry: TarEntry, rel: string, reject: Reject, layerName: string, canReread: boolean): Promise<void> {
    const h = entry.header;
    switch (h.type) {
      case 'file': {
        const sink = this.#opts.tap?.(rel, h);
        await this.#w.writeFile(rel, this.#attrs(h), h.size, sink ? teeBody(entry.body, sink) : entry.body);
        this.#bytes += h.size;
        this.#meta.set(rel, this.#metaOf(h, 'file'));
        return;
      }
      case 'dir':
        this.#w.mkdir(rel, this.#attrs(h));
        this.#meta.set(rel, this.#metaOf(h, 'dir'));
        this.#opts.tap?.(rel, h);
        return;
      case 'symlink':
        if (h.linkname === '') throw reject('empty symlink target');
        // Linux symlinks are always 0777 (what a host tree and mkfs -d give); the header's mode is kept in meta.
        await this.#w.symlink(rel, h.linkname, { ...this.#attrs(h), mode: 0o777 });
        this.#meta.set(rel, this.#metaOf(h, 'symlink'));
        this.#opts.tap?.(rel, h);
        return;
      case 'link':
        this.#link(rel, h, reject, canReread);
        return;
      default:
        this.#skipped.push(
          `${layerName}: ${rel} (${h.type === 'unknown' ? `unsupported type ${JSON.stringify(h.typeflag)}` : h.type})`,
        );
    }
  }

  #link(rel: string, h: TarHeader, reject: Reject, canReread: boolean): void {
    const linkname = h.linkname;
    const quoted = JSON.stringify(linkname);
    const norm = normalizeEntryPath(linkname);
    if ('reason' in norm) throw reject(`hardlink target ${quoted}: ${norm.reason}`);
    const target = norm.rel;
    if (target === '' || target === rel) throw reject(`hardlink target ${quoted} is the root or the entry itself`);
    if (this.#opts.skip?.(target) === true) {
      this.#declared.delete(rel);
      return;
    }
    const pendingTo = [...this.#pendingLinks].find(([, links]) => links.includes(target))?.[0];
    const hiddenTarget = this.#unwritten.has(target) ? target : pendingTo;
    if (hiddenTarget !== undefined) {
      if (!canReread) throw reject(`hardlink target ${quoted} was replaced or removed by a higher layer`);
      const links = this.#pendingLinks.get(hiddenTarget) ?? [];
      links.push(rel);
      this.#pendingLinks.set(hiddenTarget, links);
      return;
    }
    const d = this.#declared.get(target);
    const source = this.#meta.get(target);
    if (d?.layer !== this.#layer || source === undefined || (source.type !== 'file' && source.type !== 'hardlink')) {
      throw reject(`hardlink target ${quoted}: not an earlier regular file of the same layer`);
    }
    this.#w.link(rel, target);
    this.#meta.set(rel, { ...source, type: 'hardlink' });
    this.#opts.tap?.(rel, h, target);
  }

  /** The parents of a hidden entry that no higher layer hides, made as implicit directories. */
  #visibleParents(rel: string, reject: Reject): void {
    const parts = rel.split('/');
    let visible = 0;
    while (visible < parts.length - 1) {
      const p = parts.slice(0, visible + 1).join('/');
      const d = this.#declared.get(p);
      if (this.#hidden(p) || (d !== undefined && d.layer < this.#layer && !d.dir)) break;
      visible++;
    }
    if (visible > 0) this.#parents(`${parts.slice(0, visible).join('/')}/x`, reject);
  }

  /** Makes the missing parents of `rel` (implicit directories); a non-directory on the way is refused. */
  #parents(rel: string, reject: Reject): void {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      const found = this.#w.lookup(p);
      if (found === undefined) {
        const t = { sec: this.#opts.now ?? Math.floor(Date.now() / 1000), nsec: 0 };
        this.#w.mkdir(p, { mode: IMPLICIT_DIR.mode, uid: IMPLICIT_DIR.uid, gid: IMPLICIT_DIR.gid, mtime: t });
        this.#meta.set(p, { ...IMPLICIT_DIR });
      } else if (found.type === 'symlink') {
        throw reject('path goes through a symlink');
      } else if (found.type !== 'dir') {
        throw reject('parent is not a directory');
      }
    }
  }

  #attrs(h: TarHeader): Attrs {
    return { mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime, xattrs: h.xattrs };
  }

  #metaOf(h: TarHeader, type: EntryMeta['type']): EntryMeta {
    return { uid: h.uid, gid: h.gid, mode: h.mode, type };
  }
}

/** A file's data passed through, each chunk also given to `sink`. */
async function* teeBody(body: AsyncIterable<Buffer>, sink: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  for await (const chunk of body) {
    sink(chunk);
    yield chunk;
  }
}
