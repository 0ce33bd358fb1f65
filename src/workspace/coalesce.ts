/*
 * Few large chunks instead of many small ones: a tar of small files comes out
 * of the packer as ~3 chunks per file (header, data, padding), each of which
 * would otherwise be its own write into ssh (its own packet for the guest to
 * decrypt) or its own agent frame.
 */

/** Bytes gathered before a chunk is passed on (the rest goes at the end). */
export const COALESCE_BYTES = 64 * 1024;

export async function* coalesce(src: AsyncIterable<Uint8Array>, min = COALESCE_BYTES): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let n = 0;
  for await (const c of src) {
    parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    n += c.byteLength;
    if (n >= min) {
      yield parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n);
      parts = [];
      n = 0;
    }
  }
  if (n > 0) yield Buffer.concat(parts, n);
}
