import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/*
 * A host file written atomically: a new temporary file next to it
 * (O_EXCL|O_NOFOLLOW, so nothing already there is written through), renamed
 * over the target when complete; removed on any failure. The content may be
 * what a guest wrote: only the name the user gave is ever created.
 */

export interface AtomicFile {
  write(chunk: Buffer): Promise<void>;
  /** Makes it the target. */
  commit(): Promise<void>;
  /** Drops the temporary file (after commit: nothing). */
  abort(): Promise<void>;
}

export async function openAtomic(target: string, mode = 0o644): Promise<AtomicFile> {
  const tmp = join(dirname(target), `.${basename(target)}.banger-${randomBytes(6).toString('hex')}`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const fh = await open(tmp, flags, mode);
  let open_ = true;
  let done = false;
  const close = async (): Promise<void> => {
    if (!open_) return;
    open_ = false;
    await fh.close();
  };
  return {
    write: async (chunk) => {
      await fh.write(chunk);
    },
    commit: async () => {
      await fh.sync();
      await close();
      await rename(tmp, target);
      done = true;
    },
    abort: async () => {
      if (done) return;
      await close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
    },
  };
}
