import type { TarHeader } from '../../archive/tar-reader.js';
import { workSeedSpec } from '../../ext4/mkfs.js';
import { Ext4Writer, type Attrs } from '../../ext4/writer/writer.js';

/*
 * The work-seed (the image's /root as a small ext4, SPEC §6.1 step 8) of an
 * image written by the LayerMerger: the merger's tap hands over /root's final
 * entries as they are written (top-down, the first seen is final), their data
 * kept in memory up to MAX_SEED_BYTES, and a second Ext4Writer makes the seed
 * from them once the rootfs is done. No file of the image is made on the host.
 */

/** Bytes of /root's files kept for the seed; a bigger /root gets no seed (VMs start with an empty /root, as before). */
export const MAX_SEED_BYTES = 256 * 1048576;

interface SeedEntry {
  h: TarHeader;
  chunks: Buffer[];
  /** Hard links: the target, relative to the image root. */
  link?: string;
}

export class SeedCapture {
  readonly #entries = new Map<string, SeedEntry>();
  #root: TarHeader | undefined;
  #bytes = 0;
  /** Why the seed cannot be made (too big), or undefined. */
  failed: string | undefined;
  /** Hard links from /root to files outside it (not in the seed: their data was not kept). */
  readonly outside: string[] = [];

  /** The merger's tap for /root; returns a data sink for /root's regular files. */
  tap(rel: string, h: TarHeader, linkTarget?: string): ((chunk: Buffer) => void) | undefined {
    if (rel === 'root') {
      this.#root = h;
      return undefined;
    }
    if (!rel.startsWith('root/')) return undefined;
    const sub = rel.slice(5);
    const e: SeedEntry = { h, chunks: [] };
    if (linkTarget !== undefined) {
      e.link = linkTarget;
      this.#entries.set(sub, e);
      return undefined;
    }
    this.#entries.set(sub, e);
    if (h.type !== 'file') return undefined;
    this.#bytes += h.size;
    if (this.#bytes > MAX_SEED_BYTES) this.failed ??= `/root holds over ${MAX_SEED_BYTES} bytes`;
    return (chunk) => {
      if (this.failed === undefined) e.chunks.push(Buffer.from(chunk));
    };
  }

  /** Writes the seed to `out` (an Ext4Writer image, sized by workSeedSpec as mkfs -d's was). */
  async write(out: string, now: number): Promise<void> {
    if (this.failed !== undefined) throw new Error(this.failed);
    const spec = workSeedSpec(this.#bytes + this.#entries.size * 4096);
    const w = await Ext4Writer.create(out, { sizeBytes: spec.sizeBytes, inodes: spec.inodes, label: 'work', now });
    try {
      const t = { sec: now, nsec: 0 };
      const root = this.#root;
      w.setRootAttrs({ mode: root?.mode ?? 0o700, uid: 0, gid: 0, mtime: root?.mtime ?? t });
      // Parents before children; hard links after every file.
      const order = [...this.#entries].sort(
        ([a, x], [b, y]) =>
          Number(x.link !== undefined) - Number(y.link !== undefined) || a.split('/').length - b.split('/').length,
      );
      for (const [rel, e] of order) {
        const parts = rel.split('/');
        for (let i = 1; i < parts.length; i++) {
          const p = parts.slice(0, i).join('/');
          if (w.lookup(p) === undefined) w.mkdir(p, { mode: 0o755, uid: 0, gid: 0, mtime: t });
        }
        const a: Attrs = { mode: e.h.mode, uid: e.h.uid, gid: e.h.gid, mtime: e.h.mtime, xattrs: e.h.xattrs };
        if (e.link !== undefined) {
          if (e.link.startsWith('root/') && w.lookup(e.link.slice(5)) !== undefined) w.link(rel, e.link.slice(5));
          else this.outside.push(rel);
        } else if (e.h.type === 'dir') {
          if (w.lookup(rel) === undefined) w.mkdir(rel, a);
          else w.setDirAttrs(rel, a);
        } else if (e.h.type === 'symlink') {
          await w.symlink(rel, e.h.linkname, { ...a, mode: 0o777 });
        } else {
          await w.writeFile(rel, a, e.h.size, Buffer.concat(e.chunks));
        }
      }
      await w.finish();
    } catch (e) {
      await w.abort();
      throw e;
    }
  }
}
