import type { ErrorCode } from '../errors.js';

/**
 * The CLI↔daemon wire: one request per Unix-socket connection, newline-delimited JSON.
 * client → `Request`; daemon → zero or more `{event}` lines, then exactly one `{result}` or `{error}`.
 * Closing the connection early cancels the operation.
 */
export interface Request {
  method: string;
  params: unknown;
  op_id?: string;
  version: string;
}

export interface ProgressEvent {
  /** Short machine-readable stage, e.g. 'kernel', 'image', 'boot', 'ssh'. */
  stage: string;
  message: string;
  /** For downloads and long copies. */
  current?: number;
  total?: number;
}

export interface WireError {
  code: ErrorCode;
  message: string;
  hint?: string;
  detail?: string;
  op_id: string;
}

export type ResponseLine = { event: ProgressEvent } | { result: unknown; op_id: string } | { error: WireError };

/** Splits a byte stream into JSON lines. */
export class LineDecoder {
  private buf = '';
  push(chunk: string): unknown[] {
    this.buf += chunk;
    const out: unknown[] = [];
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i).trim();
      this.buf = this.buf.slice(i + 1);
      if (line) out.push(JSON.parse(line));
    }
    return out;
  }
}

export const encodeLine = (v: unknown): string => `${JSON.stringify(v)}\n`;
