import { open, rename, writeFile, type FileHandle } from 'node:fs/promises';

/** SPEC §4: a running VM's console log is cut back once it passes this size. */
export const CONSOLE_MAX_BYTES = 10 << 20;
/** How much of the end of a cut log is kept (in `<log>.1`). */
export const CONSOLE_KEEP_BYTES = 1 << 20;
/** What `vm logs` returns by default (and the most it returns is CONSOLE_MAX_BYTES). */
export const LOGS_TAIL_BYTES = 1 << 20;
/** How often the daemon checks the console logs of running VMs. */
export const CONSOLE_CHECK_MS = 5_000;

/** What the log may grow by between the size check and the cut and still be kept. */
const GROWTH_BYTES = 4 << 20;

/** The file the kept tail of a cut console log goes to. */
export const previousLog = (path: string): string => `${path}.1`;

async function openIfExists(path: string, flags: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, flags);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Reads up to `max` bytes from `pos` (fewer at end of file). */
async function readAt(fh: FileHandle, pos: number, max: number): Promise<Buffer> {
  const buf = Buffer.alloc(max);
  let got = 0;
  while (got < max) {
    const { bytesRead } = await fh.read(buf, got, max - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/**
 * Cuts a console log that passed `maxBytes` back to empty, keeping its last
 * `keepBytes` (from the first line start in them) in `<log>.1`. The VMM has
 * the log open for appending (qemu `append=on`, firecracker's stdout opened
 * O_APPEND), so its next write lands at the new end instead of leaving a hole
 * the size of the old log. The tail is read up to the end of file right
 * before the truncation; what the guest prints between that read and the
 * truncation (microseconds) is lost. Returns whether it cut.
 */
export async function cutConsole(
  path: string,
  maxBytes = CONSOLE_MAX_BYTES,
  keepBytes = CONSOLE_KEEP_BYTES,
): Promise<boolean> {
  const fh = await openIfExists(path, 'r+');
  if (!fh) return false;
  let tail: Buffer;
  try {
    const { size } = await fh.stat();
    if (size <= maxBytes) return false;
    // Up to the current end: the file may have grown since stat (bounded, in case it grows fast).
    tail = await readAt(fh, size - keepBytes, keepBytes + GROWTH_BYTES);
    await fh.truncate(0);
  } finally {
    await fh.close();
  }
  const nl = tail.indexOf(0x0a);
  if (nl >= 0 && nl < tail.length - 1) tail = tail.subarray(nl + 1);
  await writeFile(`${previousLog(path)}.tmp`, tail);
  await rename(`${previousLog(path)}.tmp`, previousLog(path));
  return true;
}

/** The last `n` bytes of a file and its size (empty and 0 when it does not exist). */
async function fileTail(path: string, n: number): Promise<{ buf: Buffer; size: number }> {
  const fh = await openIfExists(path, 'r');
  if (!fh) return { buf: Buffer.alloc(0), size: 0 };
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - n);
    return { buf: await readAt(fh, start, Math.min(n, size)), size };
  } finally {
    await fh.close();
  }
}

/**
 * The last `maxBytes` of a console log, continued from the kept tail of its
 * last cut when the log itself is shorter; `size` is the log's own size (where
 * `vm logs -f` starts following). Never reads more than maxBytes.
 */
export async function readConsoleTail(path: string, maxBytes: number): Promise<{ text: string; size: number }> {
  const cur = await fileTail(path, maxBytes);
  const room = maxBytes - cur.buf.length;
  const prev = room > 0 ? (await fileTail(previousLog(path), room)).buf : Buffer.alloc(0);
  return { text: Buffer.concat([prev, cur.buf]).toString('utf8'), size: cur.size };
}
