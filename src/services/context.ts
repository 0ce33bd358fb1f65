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

/**
 * A download's byte counts as progress events: one per 5% of a known total
 * (a renderer without a terminal prints each as a line); none when the size
 * is unknown.
 */
export function downloadProgress(
  ctx: OpContext,
  stage: string,
  message: string,
): (got: number, total: number | undefined) => void {
  let last = -1;
  return (got, total) => {
    if (total === undefined || total <= 0) return;
    const step = Math.floor((Math.min(got, total) / total) * 20);
    if (step === last) return;
    last = step;
    ctx.progress({ stage, message, current: Math.min(got, total), total });
  };
}
