import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/*
 * The one sha256 stream: downloads (kernel tarballs, bundles), registry blobs
 * (checked against their digest and descriptor size), the blob cache and
 * layer diff_ids all pass their bytes through a HashingStream.
 */

export interface HashingOptions {
  /**
   * At most this many bytes may pass: the chunk that goes past it fails the
   * stream with `tooBig(bytes)` at once, so nothing is read or stored beyond it.
   */
  maxBytes?: number;
  tooBig?: (bytes: number) => Error;
  /**
   * Called once the input ended, with the hex digest and the byte count; an
   * Error it returns fails the stream (a digest or size mismatch).
   */
  check?: (digestHex: string, bytes: number) => Error | undefined;
  /** Called with the byte count after each chunk (progress); a 'data' listener would start the flow too early. */
  onBytes?: (bytes: number) => void;
}

/** A pass-through Transform that sha256-hashes and counts the bytes; `digest()` is valid after the stream ended. */
export class HashingStream extends Transform {
  readonly #hash: Hash = createHash('sha256');
  readonly #opts: HashingOptions;
  #bytes = 0;
  #digest: string | undefined;

  constructor(opts: HashingOptions = {}) {
    super();
    this.#opts = opts;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    const max = this.#opts.maxBytes;
    if (max !== undefined && this.#bytes > max) {
      callback(this.#opts.tooBig?.(this.#bytes) ?? new Error(`more than ${max} bytes`));
      return;
    }
    this.#hash.update(chunk);
    this.#opts.onBytes?.(this.#bytes);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash.digest('hex');
    callback(this.#opts.check?.(this.#digest, this.#bytes));
  }

  /** Lowercase hex sha256 of everything that passed through. Throws if called before the input ended. */
  digest(): string {
    if (this.#digest === undefined) throw new Error('HashingStream.digest() called before the stream ended');
    return this.#digest;
  }

  /** Bytes passed through so far. */
  bytes(): number {
    return this.#bytes;
  }
}

/** 'sha256:<hex>' of a buffer. */
export const sha256Digest = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
