import type { ProgressEvent } from '../api/protocol.js';

/** Per-request context handed to every service call. */
export interface OpContext {
  opId: string;
  signal: AbortSignal;
  progress(ev: ProgressEvent): void;
}

/** A context for internal work that nobody watches. */
export function quietContext(opId = 'internal'): OpContext {
  return { opId, signal: new AbortController().signal, progress: () => undefined };
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const nullLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
