import { operationFailed, type AppError } from '../errors.js';
import { HEADER_SIZE, MAX_PAYLOAD, type Frame } from './protocol.js';

/** One frame on the wire: 9-byte header (u32 length, u32 session, u8 type) + payload. */
export function encodeFrame(type: number, session: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  if (payload.length > MAX_PAYLOAD)
    throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  if (!Number.isInteger(session) || session < 0 || session > 0xffffffff)
    throw new RangeError(`bad session id ${session}`);
  if (!Number.isInteger(type) || type < 0 || type > 0xff) throw new RangeError(`bad frame type ${type}`);
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt32BE(session, 4);
  header.writeUInt8(type, 8);
  return Buffer.concat([header, payload]);
}

/**
 * Splits a byte stream into frames. Keeps the bytes of at most one incomplete
 * frame, looks at each byte once (chunks are only joined to cut a frame out),
 * and rejects an oversized length as soon as its header is complete. After an
 * error it stays failed: the stream cannot be trusted past a bad header.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Payload length of the frame whose header has been read, until it is complete. */
  private length: number | undefined;
  private failure: AppError | undefined;

  constructor(private readonly maxPayload = MAX_PAYLOAD) {}

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Frame[] {
    if (this.failure) throw this.failure;
    if (chunk.length) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Frame[] = [];
    while (this.buffered >= HEADER_SIZE) {
      if (this.length === undefined) {
        const length = this.peek(HEADER_SIZE).readUInt32BE(0);
        if (length > this.maxPayload) {
          this.failure = operationFailed(
            `the guest agent sent a malformed frame: payload length ${length} exceeds the maximum ${this.maxPayload}`,
          );
          this.chunks = [];
          this.buffered = 0;
          throw this.failure;
        }
        this.length = length;
      }
      if (this.buffered < HEADER_SIZE + this.length) break;
      const whole = this.take(HEADER_SIZE + this.length);
      this.length = undefined;
      frames.push({ type: whole.readUInt8(8), session: whole.readUInt32BE(4), payload: whole.subarray(HEADER_SIZE) });
    }
    return frames;
  }

  /** The first n buffered bytes (n ≤ buffered), joining only as many chunks as needed. */
  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first.subarray(0, n);
    const parts: Buffer[] = [];
    let have = 0;
    for (const c of this.chunks) {
      parts.push(c);
      have += c.length;
      if (have >= n) break;
    }
    return Buffer.concat(parts, have).subarray(0, n);
  }

  /** Removes and returns the first n buffered bytes. */
  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    let used = 0; // whole chunks consumed: dropped in one splice, not shift by shift
    while (off < n) {
      const c = this.chunks[used] as Buffer;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) used++;
      else this.chunks[used] = c.subarray(k);
    }
    this.chunks.splice(0, used);
    this.buffered -= n;
    return out;
  }
}
