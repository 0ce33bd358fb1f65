import { badRequest, type ErrorCode } from '../errors.js';

/**
 * The CLI↔daemon wire: HTTP/1.1 on the daemon's Unix socket (and on the optional TCP
 * listener, `api_listen`), one request per connection. docs/http-api.md is the full description.
 *
 * A unary method: `POST /v1/<method>`, the params as a JSON body, the client's version in
 * `Banger-Version` (and optionally an op id in `Banger-Op-Id`). The response body is a sequence of
 * frames, one JSON object per line (`application/x-ndjson`, sent chunked): zero or more `{event}`,
 * then exactly one `{result}` or `{error}`. The status is the outcome's (`httpStatus`) when the
 * operation ends before its first event; once an event went out it is 200 and the last frame tells.
 * Closing the connection early cancels the operation.
 *
 * A streaming method (api/methods.ts `StreamMethod`: vm.exec, vm.file_put, vm.file_get) is the
 * same POST with `Connection: Upgrade` and `Upgrade: banger-stream` and no body; after the daemon's
 * `101 Switching Protocols` the connection carries frames both ways, one JSON object per line: the
 * client first sends its params (one line), then `StreamFrame` lines (client → daemon `In`, daemon
 * → client `Out`, interleaved with `{event}` lines), then `{end: true}` when it has no more input;
 * the daemon ends the exchange with one `{result}` or `{error}` line. Client frames are checked
 * against the method's frame schema: a bad one ends the operation with bad_request. Either side
 * stops reading while the other's frames wait unhandled (daemon/stream.ts); meanwhile the daemon
 * writes a blank line every second (readers skip blank lines) to notice a client gone.
 */
export const API_PREFIX = '/v1/';
/** The Upgrade token of a streaming method's request. */
export const STREAM_UPGRADE = 'banger-stream';
/**
 * The Upgrade token of proc.pty: the request carries its params as a JSON body (as a unary method);
 * after `101` the connection carries raw terminal bytes both ways (docs/http-api.md).
 */
export const PTY_UPGRADE = 'banger-pty';
/** The header of proc.pty's 101 naming the process (for proc.resize, proc.wait, proc.signal). */
export const HEADER_PROC_ID = 'banger-proc-id';
export const HEADER_VERSION = 'banger-version';
export const HEADER_OP_ID = 'banger-op-id';
export const FRAMES_CONTENT_TYPE = 'application/x-ndjson';

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

/** One frame of a streaming method's data, in either direction (see the top of this file). */
export type StreamFrame<T> = { frame: T } | { end: true };

/** Limits of the wire, in one place. */
export const WIRE_LIMITS = {
  /**
   * A request body (a streaming method: its params line, and each frame line) longer than this gets
   * bad_request (HTTP 413) and the connection is closed.
   */
  maxRequestBytes: 1024 * 1024,
  /**
   * A client must complete its request (headers and body; a streaming method: its params line)
   * this long after connecting, or it gets bad_request (HTTP 408) and is disconnected. It does not
   * apply once the request is read: operations and their progress streams may run for as long as they need.
   */
  requestTimeoutMs: 10_000,
} as const;

/** The HTTP status of an outcome: 200 for a result, else by error code. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  not_found: 404,
  unknown_method: 404,
  already_exists: 409,
  precondition: 409,
  bad_version: 409,
  operation_failed: 500,
  cancelled: 503,
};

const NEWLINE = 0x0a;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Splits a byte stream into lines (without the newline). Each byte is looked
 * at once, and an incomplete line is kept in one buffer that grows by doubling
 * (a line trickling in byte by byte costs linear time and at most twice its
 * size). A line longer than `maxLineBytes` throws bad_request as soon as the
 * limit is passed, newline or not.
 */
export class LineSplitter {
  private buf = Buffer.alloc(0);
  private len = 0;

  constructor(private readonly maxLineBytes = Number.POSITIVE_INFINITY) {}

  push(chunk: string | Uint8Array): Buffer[] {
    let rest =
      typeof chunk === 'string'
        ? Buffer.from(chunk, 'utf8')
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const lines: Buffer[] = [];
    for (let i = rest.indexOf(NEWLINE); i >= 0; i = rest.indexOf(NEWLINE)) {
      this.check(this.len + i);
      if (this.len === 0) {
        lines.push(rest.subarray(0, i));
      } else {
        this.append(rest.subarray(0, i));
        lines.push(this.buf.subarray(0, this.len));
        this.buf = Buffer.alloc(0);
        this.len = 0;
      }
      rest = rest.subarray(i + 1);
    }
    if (rest.length > 0) {
      this.check(this.len + rest.length);
      this.append(rest);
    }
    return lines;
  }

  /** Bytes held for the incomplete line (its buffer's capacity). */
  get retainedBytes(): number {
    return this.buf.length;
  }

  private append(bytes: Buffer): void {
    const need = this.len + bytes.length;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(this.buf.length * 2, this.maxLineBytes), 256));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    bytes.copy(this.buf, this.len);
    this.len = need;
  }

  private check(bytes: number): void {
    if (bytes > this.maxLineBytes) {
      this.buf = Buffer.alloc(0);
      this.len = 0;
      throw badRequest(
        `request is longer than ${this.maxLineBytes} bytes`,
        'requests and stream frames are small JSON objects, at most 1 MiB each',
      );
    }
  }
}

/** Parses one line: valid UTF-8 and JSON, else bad_request. Blank lines are `undefined`. */
export function parseLine(line: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    throw badRequest('request is not valid UTF-8');
  }
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badRequest('request is not valid JSON');
  }
}

/** Splits a byte stream into JSON lines (see LineSplitter, parseLine); blank lines are skipped. */
export class LineDecoder {
  private readonly splitter: LineSplitter;

  constructor(maxLineBytes?: number) {
    this.splitter = new LineSplitter(maxLineBytes);
  }

  push(chunk: string | Uint8Array): unknown[] {
    return this.splitter
      .push(chunk)
      .map(parseLine)
      .filter((v) => v !== undefined);
  }
}

export const encodeLine = (v: unknown): string => `${JSON.stringify(v)}\n`;
