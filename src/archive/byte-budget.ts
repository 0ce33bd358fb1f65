import { Transform, type TransformCallback } from 'node:stream';
import { badRequest } from '../errors.js';

/**
 * A byte allowance shared by several streams (e.g. all layers of one image):
 * each `meter()` passes bytes through until the total would exceed `limit`,
 * then fails with a badRequest naming what was being read and the limit.
 */
export class ByteBudget {
  #used = 0;

  constructor(
    readonly limit: number,
    private readonly what: string,
    private readonly hint: string,
  ) {}

  get used(): number {
    return this.#used;
  }

  meter(label: string): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void => {
        this.#used += chunk.length;
        if (this.#used > this.limit) {
          cb(badRequest(`${this.what} is larger than ${this.limit} bytes (reading ${label})`, this.hint));
          return;
        }
        cb(null, chunk);
      },
    });
  }
}
