import { operationFailed } from '../errors.js';

/** Bounds-checked big-endian reader over one payload; every overrun names the payload. */
export class PayloadReader {
  private off = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  get left(): number {
    return this.buf.length - this.off;
  }

  fail(detail: string): never {
    throw operationFailed(`malformed ${this.what} payload: ${detail}`);
  }

  private need(n: number, field: string): number {
    if (this.left < n) this.fail(`truncated in ${field}`);
    const at = this.off;
    this.off += n;
    return at;
  }

  u8(field: string): number {
    return this.buf.readUInt8(this.need(1, field));
  }

  u16(field: string): number {
    return this.buf.readUInt16BE(this.need(2, field));
  }

  u32(field: string): number {
    return this.buf.readUInt32BE(this.need(4, field));
  }

  /** A u64 that must fit a JavaScript number exactly. */
  u64(field: string): number {
    const v = this.buf.readBigUInt64BE(this.need(8, field));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${field} ${v} is too large`);
    return Number(v);
  }

  i64(field: string): number {
    const v = this.buf.readBigInt64BE(this.need(8, field));
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
      this.fail(`${field} ${v} is out of range`);
    return Number(v);
  }

  bytes(n: number, field: string): Buffer {
    const at = this.need(n, field);
    return this.buf.subarray(at, at + n);
  }

  /** u32 length + bytes. */
  str(field: string): Buffer {
    return this.bytes(this.u32(field), field);
  }

  rest(): Buffer {
    const out = this.buf.subarray(this.off);
    this.off = this.buf.length;
    return out;
  }

  end(): void {
    if (this.left) this.fail(`${this.left} trailing bytes`);
  }
}

/** Big-endian writer collecting the fields of one payload. */
export class PayloadWriter {
  private parts: Buffer[] = [];
  private size = 0;

  private push(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  u8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    return this.push(b);
  }

  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    return this.push(b);
  }

  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return this.push(b);
  }

  u64(v: number): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v));
    return this.push(b);
  }

  i64(v: number): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(v));
    return this.push(b);
  }

  bytes(b: Buffer): this {
    return this.push(b);
  }

  str(b: Buffer | string): this {
    const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
    return this.u32(buf.length).push(buf);
  }

  get length(): number {
    return this.size;
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.size);
  }
}
