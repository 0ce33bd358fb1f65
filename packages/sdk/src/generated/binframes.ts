// GENERATED: a copy of src/api/binframes.ts (src/api/sdk-types.ts); do not edit. `npm run gen:sdk-types` rewrites it.
/*
 * Binary frames of a process output stream (`proc.stream`, docs/http-api.md): the body of a
 * `200` response with content type `application/vnd.banger.frames`, sent chunked. Each frame is a
 * 16-byte header and its payload, raw (no base64):
 *
 *   byte 0      kind: 1 data, 2 evicted, 3 exit, 4 error
 *   byte 1      stream: 1 stdout, 2 stderr (0 for exit and error)
 *   bytes 2-3   zero
 *   bytes 4-7   payload length, unsigned big-endian (at most MAX_FRAME_PAYLOAD)
 *   bytes 8-15  offset, unsigned big-endian: data: the stream offset of the payload's first byte;
 *               evicted: the oldest kept byte, where data resumes; exit and error: 0
 *
 * Payloads: data: the bytes; evicted: 8 bytes, how many bytes were lost (big-endian); exit: the
 * process status as JSON (proc-contract.ts ProcStatus); error: a wire error as JSON. Exit or error is the last frame.
 *
 * Pure and self-contained (Node's Buffer only): @banger/sdk carries a copy generated from this file
 * (src/api/sdk-types.ts), so both ends use the same code and the SDK keeps no runtime dependencies.
 */

export const BINARY_FRAMES_CONTENT_TYPE = 'application/vnd.banger.frames';
export const FRAME_HEADER_BYTES = 16;
/** The most one frame carries; longer output goes in several frames. */
export const MAX_FRAME_PAYLOAD = 256 * 1024;

export type FrameStream = 'stdout' | 'stderr';

export type BinFrame =
  | { kind: 'data'; stream: FrameStream; offset: number; data: Buffer }
  | { kind: 'evicted'; stream: FrameStream; offset: number; lost: number }
  | { kind: 'exit'; status: unknown }
  | { kind: 'error'; error: unknown };

const KINDS = ['data', 'evicted', 'exit', 'error'] as const;
const STREAMS = ['stdout', 'stderr'] as const;

function header(kind: number, stream: number, length: number, offset: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUInt8(kind, 0);
  h.writeUInt8(stream, 1);
  h.writeUInt32BE(length, 4);
  h.writeBigUInt64BE(BigInt(offset), 8);
  return h;
}

function checkOffset(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} ${n} is not a non-negative safe integer`);
}

/** One frame as bytes; data longer than MAX_FRAME_PAYLOAD (or JSON that long) throws: split it first. */
export function encodeFrame(f: BinFrame): Buffer {
  let payload: Buffer;
  let offset = 0;
  let stream = 0;
  if (f.kind === 'data' || f.kind === 'evicted') {
    checkOffset(f.offset, 'offset');
    offset = f.offset;
    stream = STREAMS.indexOf(f.stream) + 1;
    if (stream === 0) throw new RangeError(`unknown stream ${String(f.stream)}`);
    if (f.kind === 'data') payload = f.data;
    else {
      checkOffset(f.lost, 'lost');
      payload = Buffer.alloc(8);
      payload.writeBigUInt64BE(BigInt(f.lost));
    }
  } else payload = Buffer.from(JSON.stringify(f.kind === 'exit' ? f.status : f.error) ?? 'null');
  if (payload.length > MAX_FRAME_PAYLOAD)
    throw new RangeError(`a frame payload of ${payload.length} bytes is over ${MAX_FRAME_PAYLOAD}`);
  return Buffer.concat([header(KINDS.indexOf(f.kind) + 1, stream, payload.length, offset), payload]);
}

/** Data frames for `data` starting at `offset`, each at most MAX_FRAME_PAYLOAD. */
export function encodeData(stream: FrameStream, offset: number, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += MAX_FRAME_PAYLOAD)
    out.push(encodeFrame({ kind: 'data', stream, offset: offset + i, data: data.subarray(i, i + MAX_FRAME_PAYLOAD) }));
  return out;
}

/** A byte sequence that is not frames (the decoder stops at the first). */
export class FrameError extends Error {}

/**
 * Reassembles frames from chunks as they arrive (a frame may be split anywhere, several may share a
 * chunk). Holds at most one frame's bytes; a malformed header throws FrameError.
 */
export class FrameDecoder {
  private parts: Buffer[] = [];
  private held = 0;
  private failed = false;

  /** Bytes received that do not yet make a whole frame. */
  get pending(): number {
    return this.held;
  }

  push(chunk: Buffer): BinFrame[] {
    if (this.failed) throw new FrameError('the frame stream already failed');
    if (chunk.length > 0) {
      this.parts.push(chunk);
      this.held += chunk.length;
    }
    const out: BinFrame[] = [];
    for (;;) {
      if (this.held < FRAME_HEADER_BYTES) return out;
      let f: BinFrame;
      try {
        // The whole frame is joined only once it is all here (no quadratic copying of a split payload).
        const first = this.parts[0] as Buffer;
        const head =
          first.length >= FRAME_HEADER_BYTES ? first : Buffer.concat(this.parts).subarray(0, FRAME_HEADER_BYTES);
        const length = head.readUInt32BE(4);
        if (length > MAX_FRAME_PAYLOAD) throw new FrameError(`a frame of ${length} bytes is over ${MAX_FRAME_PAYLOAD}`);
        if (this.held < FRAME_HEADER_BYTES + length) return out;
        const buf = this.parts.length === 1 ? first : Buffer.concat(this.parts);
        f = parse(buf.subarray(0, FRAME_HEADER_BYTES), buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length));
        const rest = buf.subarray(FRAME_HEADER_BYTES + length);
        this.parts = rest.length > 0 ? [rest] : [];
        this.held = rest.length;
      } catch (e) {
        this.failed = true;
        throw e instanceof FrameError ? e : new FrameError(String(e));
      }
      out.push(f);
    }
  }
}

function parse(h: Buffer, payload: Buffer): BinFrame {
  const kind = KINDS[h.readUInt8(0) - 1];
  const streamNo = h.readUInt8(1);
  if (!kind) throw new FrameError(`unknown frame kind ${h.readUInt8(0)}`);
  if (h.readUInt16BE(2) !== 0) throw new FrameError('reserved header bytes are not zero');
  const offset = Number(h.readBigUInt64BE(8));
  if (!Number.isSafeInteger(offset)) throw new FrameError('a frame offset beyond 2^53');
  if (kind === 'exit' || kind === 'error') {
    if (streamNo !== 0 || offset !== 0) throw new FrameError(`an ${kind} frame with a stream or an offset`);
    let v: unknown;
    try {
      v = JSON.parse(payload.toString('utf8'));
    } catch {
      throw new FrameError(`an ${kind} frame whose payload is not JSON`);
    }
    return kind === 'exit' ? { kind, status: v } : { kind, error: v };
  }
  const stream = STREAMS[streamNo - 1];
  if (!stream) throw new FrameError(`unknown stream ${streamNo}`);
  if (kind === 'data') return { kind, stream, offset, data: Buffer.from(payload) };
  if (payload.length !== 8) throw new FrameError('an evicted frame whose payload is not 8 bytes');
  const lost = Number(payload.readBigUInt64BE(0));
  if (!Number.isSafeInteger(lost)) throw new FrameError('an evicted count beyond 2^53');
  return { kind, stream, offset, lost };
}
