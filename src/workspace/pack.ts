import { createReadStream } from 'node:fs';
import { lstat, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack, type Pack } from 'tar-stream';

/*
 * The workspace's files as a tar stream, read from the work tree as it is
 * packed (no temporary copy): regular files with their mode, symlinks as
 * links. A tracked file missing from the work tree (deleted, not committed)
 * is left out, as the guest's checkout would not have it either.
 */

/** Files up to this size are read whole (bounded memory: one at a time). */
const SMALL_FILE = 256 * 1024;

export interface PackResult {
  /** The tar bytes, to pipe into `tar -x` in the guest. */
  stream: Pack;
  /** The same bytes, typed. */
  bytes: AsyncIterable<Uint8Array>;
  /** Resolves with the number of entries once everything was packed; rejects on a read error. */
  done: Promise<number>;
}

/** A file made on the host for the guest (e.g. .git/config), packed before the work tree's files. */
export interface ExtraFile {
  name: string;
  content: string;
  mode?: number;
}

export function packFiles(root: string, files: readonly string[], extra: readonly ExtraFile[] = []): PackResult {
  const pack = tarPack();
  const done = (async (): Promise<number> => {
    let n = 0;
    try {
      for (const x of extra) {
        const body = Buffer.from(x.content);
        pack.entry({ name: x.name, mode: x.mode ?? 0o644, mtime: new Date(), uid: 0, gid: 0, size: body.length }, body);
      }
      for (const rel of files) {
        const abs = join(root, rel);
        const st = await lstat(abs).catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return undefined;
          throw e;
        });
        if (!st) continue;
        const header = { name: rel, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
        if (st.isSymbolicLink()) {
          pack.entry({ ...header, type: 'symlink', linkname: await readlink(abs) });
        } else if (st.isFile() && st.size <= SMALL_FILE) {
          // One read, one entry: much faster than a stream per file for many small files. The
          // entry's callback waits until the pack's reader took the bytes (backpressure).
          const data = await readFile(abs);
          await new Promise<void>((res, rej) =>
            pack.entry({ ...header, type: 'file', size: data.length }, data, (e) => (e ? rej(e) : res())),
          );
        } else if (st.isFile()) {
          const entry = pack.entry({ ...header, type: 'file', size: st.size });
          await pipeline(createReadStream(abs), entry);
        } else continue;
        n++;
      }
      pack.finalize();
      return n;
    } catch (e) {
      pack.destroy(e as Error);
      throw e;
    }
  })();
  done.catch(() => undefined);
  return { stream: pack, bytes: pack as AsyncIterable<unknown> as AsyncIterable<Uint8Array>, done };
}
