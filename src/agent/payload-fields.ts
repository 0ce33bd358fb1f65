import { badRequest } from '../errors.js';
import { NONE } from './protocol.js';

/** Encoder-side checks shared by the payload modules: each throws a badRequest naming the bad value. */

export const MAX_ARGS = 4096;
export const MAX_PATH = 4095;

export function noNul(value: string, what: string): Buffer {
  const b = Buffer.from(value, 'utf8');
  if (b.includes(0)) throw badRequest(`${what} ${JSON.stringify(value)} contains a NUL byte`);
  return b;
}

export function id32(v: number | undefined, what: string): number {
  if (v === undefined) return NONE;
  if (!Number.isInteger(v) || v < 0 || v >= NONE) throw badRequest(`${what} ${v} is not a valid id`);
  return v;
}

export function u16(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw badRequest(`${what} ${v} is not within 0..65535`);
  return v;
}

export function guestPath(path: string): Buffer {
  const b = noNul(path, 'guest path');
  if (!path.startsWith('/')) throw badRequest(`guest path ${JSON.stringify(path)} is not absolute`);
  if (b.length > MAX_PATH) throw badRequest(`guest path of ${b.length} bytes is longer than ${MAX_PATH}`);
  return b;
}
