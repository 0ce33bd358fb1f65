/**
 * Ext4Writer: builds an ext4 image in one pass, without mounting and
 * without creating any file on the host but the image itself. Entries
 * arrive in tar order (parents first); file data is streamed straight to
 * allocated blocks; the metadata (directories, extent trees, inode tables,
 * bitmaps, descriptors, superblocks) is written by finish().
 */
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { appendRuns, BlockAllocator, Ext4FullError } from './alloc.js';
import type { DirEntry, FileType } from './dirblocks.js';
import type { Extent } from './extents.js';
import { BLOCK_SIZE, planGeometry, type Geometry } from './geometry.js';
import {
  EXT4_EXTENTS_FL,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFMT,
  S_IFSOCK,
  timestampOf,
  type InodeRec,
  type Timestamp,
} from './inode.js';
import { JOURNAL_INO, journalBlocksFor, journalSuperblock } from './journal.js';
import { finishImage } from './finish.js';
import { resizeInode, RESIZE_INO } from './resize.js';
import { BlockSink } from './sink.js';
import { streamFileData } from './filedata.js';
import { planXattrs, xattrEntry } from './xattr.js';
import { checksumSeed, FIRST_INO, LOST_FOUND_INO, ROOT_INO } from './superblock.js';

export { Ext4FullError, LOST_FOUND_INO, ROOT_INO };

export interface WriterOptions {
  sizeBytes: number;
  /** Inodes to make room for (rounded up to whole inode-table blocks per group). */
  inodes: number;
  label: string;
  /** Seconds since the epoch for the filesystem's own times (default: now). */
  now?: number;
  uuid?: Uint8Array;
  /** Journal blocks; 0 for none (default: about what mke2fs picks). */
  journalBlocks?: number;
}

export interface Attrs {
  /** Permission bits (0o7777 incl. setuid, setgid, sticky). */
  mode: number;
  uid: number;
  gid: number;
  mtime: Timestamp;
  atime?: Timestamp;
  ctime?: Timestamp;
  /** Extended attributes by full name (user.*, security.*, trusted.*, system.posix_acl_* in VFS format). */
  xattrs?: ReadonlyArray<readonly [name: string, value: Buffer]>;
}

/** Everything finish() needs, kept per inode while entries stream in. */
export interface InodeState extends InodeRec {
  /** Data extents of files, directories and slow symlinks (undefined: i_block is not an extent tree). */
  extents?: Extent[];
  /** For directories: parent inode and entries by name. */
  dir?: { parent: number; entries: Map<string, DirEntry> };
}

export interface WriterState {
  geo: Geometry;
  alloc: BlockAllocator;
  sink: BlockSink;
  inodes: Map<number, InodeState>;
  seed: number;
  uuid: Uint8Array;
  /** Seed of the directory-index hashes. */
  hashSeed: Uint8Array;
  label: string;
  now: number;
  journal: { start: number; blocks: number } | undefined;
  /** Metadata blocks made while entries stream in (xattr blocks), written by finish(). */
  pending: Array<{ block: number; data: Buffer }>;
}

const TYPE_BITS: Record<Exclude<FileType, 'unknown'>, number> = {
  file: S_IFREG,
  dir: S_IFDIR,
  symlink: S_IFLNK,
  chr: S_IFCHR,
  blk: S_IFBLK,
  fifo: S_IFIFO,
  sock: S_IFSOCK,
};

function splitPath(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  for (const p of parts) {
    if (p === '..') throw new Error(`path ${JSON.stringify(path)} has a '..' component`);
    if (p.includes('\0')) throw new Error(`path ${JSON.stringify(path)} has a NUL byte`);
    if (Buffer.byteLength(p) > 255) throw new Error(`name ${JSON.stringify(p.slice(0, 40))}… is over 255 bytes`);
  }
  return parts;
}

export class Ext4Writer {
  readonly #fh: FileHandle;
  readonly #s: WriterState;
  #nextIno = FIRST_INO + 1;
  #finished = false;
  #busy = false;
  /** Set when a file write failed halfway: finish() refuses such an image. */
  #failed: string | undefined;
  /** Staging for file data, reused by every writeFile (they never overlap). */
  readonly #chunk = Buffer.allocUnsafe(1024 * 1024);

  private constructor(fh: FileHandle, s: WriterState) {
    this.#fh = fh;
    this.#s = s;
  }

  /** Creates (or truncates) `path` as a sparse file of the image's size and lays out the empty filesystem. */
  static async create(path: string, opts: WriterOptions): Promise<Ext4Writer> {
    const geo = planGeometry(opts.sizeBytes, opts.inodes);
    const fh = await open(path, 'w+', 0o644);
    try {
      await fh.truncate(geo.blocksCount * BLOCK_SIZE);
      const uuid = opts.uuid ?? randomBytes(16);
      const s: WriterState = {
        geo,
        alloc: new BlockAllocator(geo),
        sink: new BlockSink(fh),
        inodes: new Map(),
        seed: checksumSeed(uuid),
        uuid,
        hashSeed: randomBytes(16),
        label: opts.label,
        now: opts.now ?? Math.floor(Date.now() / 1000),
        journal: undefined,
        pending: [],
      };
      const w = new Ext4Writer(fh, s);
      const t = { sec: s.now, nsec: 0 };
      const rootAttrs: Attrs = { mode: 0o755, uid: 0, gid: 0, mtime: t };
      w.#newInode(ROOT_INO, 'dir', rootAttrs, { parent: ROOT_INO, entries: new Map() });
      w.#newInode(LOST_FOUND_INO, 'dir', { ...rootAttrs, mode: 0o700 }, { parent: ROOT_INO, entries: new Map() });
      w.#root().entries.set('lost+found', { name: Buffer.from('lost+found'), ino: LOST_FOUND_INO, type: 'dir' });
      if (geo.reservedGdt > 0) await w.#makeResizeInode();
      const jblocks = opts.journalBlocks ?? journalBlocksFor(geo.blocksCount);
      if (jblocks > 0) await w.#makeJournal(jblocks);
      return w;
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  #root(): NonNullable<InodeState['dir']> {
    return (this.#s.inodes.get(ROOT_INO) as InodeState).dir as NonNullable<InodeState['dir']>;
  }

  #newInode(ino: number, type: Exclude<FileType, 'unknown'>, a: Attrs, dir?: InodeState['dir']): InodeState {
    const rec: InodeState = {
      mode: TYPE_BITS[type] | (a.mode & 0o7777),
      uid: a.uid,
      gid: a.gid,
      size: 0,
      atime: a.atime ?? a.mtime,
      mtime: a.mtime,
      ctime: a.ctime ?? a.mtime,
      crtime: { sec: this.#s.now, nsec: 0 },
      links: 1,
      flags: 0,
      iblock: Buffer.alloc(60),
      sectors: 0,
      xattrBlock: 0,
      inlineXattrs: Buffer.alloc(0),
    };
    if (type === 'file' || type === 'dir') {
      rec.flags = EXT4_EXTENTS_FL;
      rec.extents = [];
    }
    if (dir) rec.dir = dir;
    this.#setXattrs(rec, a.xattrs);
    this.#s.inodes.set(ino, rec);
    return rec;
  }

  #setXattrs(rec: InodeState, xattrs: Attrs['xattrs']): void {
    if (xattrs === undefined || xattrs.length === 0) return;
    if (rec.xattrBlock !== 0) throw new Error('xattrs are set once per inode');
    const plan = planXattrs(xattrs.map(([name, value]) => xattrEntry(name, value)));
    rec.inlineXattrs = plan.inline;
    if (plan.block) {
      const block = this.#s.alloc.allocBlocks(1)[0] as number;
      this.#s.pending.push({ block, data: plan.block(block, this.#s.seed) });
      rec.xattrBlock = block;
      rec.sectors += BLOCK_SIZE / 512;
    }
  }

  #allocIno(): number {
    const max = this.#s.geo.inodesPerGroup * this.#s.geo.groupCount;
    if (this.#nextIno > max) throw new Ext4FullError(`the image is out of inodes (${max})`);
    return this.#nextIno++;
  }

  async #makeResizeInode(): Promise<void> {
    const t = { sec: this.#s.now, nsec: 0 };
    const rec = this.#newInode(RESIZE_INO, 'file', { mode: 0o600, uid: 0, gid: 0, mtime: t });
    const r = resizeInode(this.#s.geo, this.#s.alloc.allocBlocks(1)[0] as number);
    delete rec.extents;
    rec.flags = 0;
    Object.assign(rec, { iblock: r.iblock, size: r.size, sectors: r.sectors });
    for (const b of r.blocks) this.#s.pending.push(b);
  }

  async #makeJournal(blocks: number): Promise<void> {
    const runs = this.#s.alloc.allocRuns(blocks);
    const start = (runs[0] as { start: number }).start;
    if (runs.length !== 1) throw new Error('no contiguous room for the journal');
    const t = { sec: this.#s.now, nsec: 0 };
    const rec = this.#newInode(JOURNAL_INO, 'file', { mode: 0o600, uid: 0, gid: 0, mtime: t });
    appendRuns(rec.extents as Extent[], 0, runs);
    rec.size = blocks * BLOCK_SIZE;
    rec.sectors = blocks * (BLOCK_SIZE / 512);
    this.#s.journal = { start, blocks };
    await this.#s.sink.write(start, journalSuperblock(blocks, this.#s.uuid));
  }

  /** The parent directory of `parts` (every ancestor must already be a directory) and the last name. */
  #parentOf(path: string): { parent: number; dir: NonNullable<InodeState['dir']>; name: string } {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined) throw new Error(`path ${JSON.stringify(path)} names the root`);
    let ino = ROOT_INO;
    for (const p of parts) {
      const e = (this.#s.inodes.get(ino) as InodeState).dir?.entries.get(p);
      if (e === undefined || e.type !== 'dir') throw new Error(`parent of ${JSON.stringify(path)} is not a directory`);
      ino = e.ino;
    }
    const dir = (this.#s.inodes.get(ino) as InodeState).dir as NonNullable<InodeState['dir']>;
    return { parent: ino, dir, name };
  }

  #add(path: string, type: Exclude<FileType, 'unknown'>, a: Attrs): InodeState & { ino: number } {
    if (this.#finished) throw new Error('the image is already finished');
    const { parent, dir, name } = this.#parentOf(path);
    if (dir.entries.has(name)) throw new Error(`${JSON.stringify(path)} already exists`);
    const ino = this.#allocIno();
    const rec = this.#newInode(ino, type, a, type === 'dir' ? { parent, entries: new Map() } : undefined);
    dir.entries.set(name, { name: Buffer.from(name), ino, type });
    return Object.assign(rec, { ino });
  }

  /** Sets the root directory's attributes (a tar's "./" entry). */
  setRootAttrs(a: Attrs): void {
    this.#setAttrs(ROOT_INO, a);
  }

  /** What is at `path` (no link is followed): its inode and type, or undefined. '' is the root. */
  lookup(path: string): { ino: number; type: FileType } | undefined {
    if (splitPath(path).length === 0) return { ino: ROOT_INO, type: 'dir' };
    let at: { parent: number; dir: NonNullable<InodeState['dir']>; name: string };
    try {
      at = this.#parentOf(path);
    } catch {
      return undefined;
    }
    const e = at.dir.entries.get(at.name);
    return e === undefined ? undefined : { ino: e.ino, type: e.type };
  }

  /**
   * Replaces the attributes of an existing directory (a layer declaring a
   * directory that was made earlier, e.g. implicitly for its children).
   * Xattrs can be given once per inode.
   */
  setDirAttrs(path: string, a: Attrs): void {
    if (this.#finished) throw new Error('the image is already finished');
    const found = this.lookup(path);
    if (found?.type !== 'dir') throw new Error(`${JSON.stringify(path)} is not a directory`);
    this.#setAttrs(found.ino, a);
  }

  #setAttrs(ino: number, a: Attrs): void {
    const r = this.#s.inodes.get(ino) as InodeState;
    this.#setXattrs(r, a.xattrs);
    Object.assign(r, { mode: (r.mode & S_IFMT) | (a.mode & 0o7777), uid: a.uid, gid: a.gid, mtime: a.mtime });
    r.atime = a.atime ?? a.mtime;
    r.ctime = a.ctime ?? a.mtime;
  }

  mkdir(path: string, a: Attrs): number {
    return this.#add(path, 'dir', a).ino;
  }

  /** A device node, fifo or socket; `rdev` as major/minor. */
  mknod(path: string, type: 'chr' | 'blk' | 'fifo' | 'sock', a: Attrs, major = 0, minor = 0): number {
    const rec = this.#add(path, type, a);
    if (type === 'chr' || type === 'blk') {
      if (major < 256 && minor < 256) rec.iblock.writeUInt32LE((major << 8) | minor, 0);
      else rec.iblock.writeUInt32LE(((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, 4);
    }
    return rec.ino;
  }

  /** A symlink: targets under 60 bytes live in the inode, longer ones in a data block. */
  async symlink(path: string, target: string | Buffer, a: Attrs): Promise<number> {
    const t = typeof target === 'string' ? Buffer.from(target) : target;
    if (t.length === 0 || t.length >= BLOCK_SIZE) throw new Error(`symlink target of ${t.length} bytes`);
    const rec = this.#add(path, 'symlink', a);
    rec.size = t.length;
    if (t.length < 60) {
      t.copy(rec.iblock);
      return rec.ino;
    }
    rec.flags = EXT4_EXTENTS_FL;
    rec.extents = [];
    const runs = this.#s.alloc.allocRuns(1);
    appendRuns(rec.extents, 0, runs);
    rec.sectors = BLOCK_SIZE / 512;
    await this.#s.sink.write((runs[0] as { start: number }).start, t);
    return rec.ino;
  }

  /** A hard link at `path` to the non-directory at `existing`. */
  link(path: string, existing: string): number {
    const src = this.#parentOf(existing);
    const e = src.dir.entries.get(src.name);
    if (e === undefined) throw new Error(`hard link target ${JSON.stringify(existing)} does not exist`);
    if (e.type === 'dir') throw new Error(`hard link target ${JSON.stringify(existing)} is a directory`);
    const { dir, name } = this.#parentOf(path);
    if (dir.entries.has(name)) throw new Error(`${JSON.stringify(path)} already exists`);
    const rec = this.#s.inodes.get(e.ino) as InodeState;
    if (rec.links >= 65000) throw new Error(`too many hard links to ${JSON.stringify(existing)}`);
    rec.links++;
    dir.entries.set(name, { name: Buffer.from(name), ino: e.ino, type: e.type });
    return e.ino;
  }

  /**
   * A regular file of exactly `size` bytes read from `data`. All-zero blocks
   * become holes. Throws (and leaves the file's blocks allocated but the
   * image unfinished) when the stream's length differs from `size`.
   */
  async writeFile(path: string, a: Attrs, size: number, data: AsyncIterable<Uint8Array> | Uint8Array): Promise<number> {
    if (this.#busy) throw new Error('writeFile calls must not overlap');
    this.#busy = true;
    try {
      return await this.#writeFile(path, a, size, data);
    } catch (e) {
      // The file's entry and blocks exist but its data does not: the image can only be discarded.
      this.#failed ??= `writing ${JSON.stringify(path)} failed`;
      throw e;
    } finally {
      this.#busy = false;
    }
  }

  async #writeFile(
    path: string,
    a: Attrs,
    size: number,
    data: AsyncIterable<Uint8Array> | Uint8Array,
  ): Promise<number> {
    const rec = this.#add(path, 'file', a);
    await streamFileData(this.#s, rec, this.#chunk, size, data, path);
    rec.size = size;
    return rec.ino;
  }

  /** Writes all metadata and closes the image. */
  async finish(): Promise<{ inodes: number; blocks: number }> {
    if (this.#finished) throw new Error('the image is already finished');
    if (this.#failed !== undefined) throw new Error(`the image is incomplete (${this.#failed}); abort() it`);
    this.#finished = true;
    try {
      return await finishImage(this.#s);
    } finally {
      await this.#fh.close();
    }
  }

  /** Closes the file without finishing (the caller removes it). */
  async abort(): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    await this.#s.sink.drain().catch(() => undefined);
    await this.#fh.close();
  }
}

export { timestampOf };
