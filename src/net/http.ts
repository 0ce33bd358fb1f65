import { Readable } from 'node:stream';
import { AppError, cancelled, errorMessage, isAbortError } from '../errors.js';
import { ProxyConnectionError, type HttpFetch } from './transport.js';

/*
 * What every HTTP client in banger shares: redirects followed by hand with
 * every hop checked before it is contacted, bounded reads, the response body
 * as a Node stream with cut connections told apart, and network errors in
 * words.
 */

export interface FollowOptions {
  fetch: HttpFetch;
  headers: Record<string, string>;
  signal?: AbortSignal | undefined;
  maxRedirects: number;
  /** Called before each URL is requested, the first one included; throws to refuse it. */
  checkHop: (u: URL) => void;
  /** The error for a request that got no response (refused, reset, DNS, TLS, proxy). */
  networkError: (err: unknown, u: URL) => AppError;
  /** The error for a redirect chain that is too long, or a Location that is not a URL. */
  redirectError: (why: string) => AppError;
}

/**
 * One GET with redirects followed by hand: every hop passes `checkHop` first
 * (fetch's own following would accept an https → plain-http downgrade to any
 * host), and the Authorization header goes only to the starting origin.
 * Returns the first non-redirect response and the URL that answered it.
 */
export async function fetchFollowing(start: URL, o: FollowOptions): Promise<{ res: Response; url: URL }> {
  let current = start;
  let sameOrigin = true;
  for (let hop = 0; ; hop++) {
    if (o.signal?.aborted) throw cancelled();
    o.checkHop(current);
    sameOrigin = sameOrigin && current.origin === start.origin;
    const headers: Record<string, string> = { ...o.headers };
    if (!sameOrigin) delete headers.authorization;
    let res: Response;
    try {
      res = await o.fetch(current, { headers, redirect: 'manual', signal: o.signal });
    } catch (err) {
      if (o.signal?.aborted || isAbortError(err)) throw cancelled();
      if (err instanceof AppError) throw err;
      throw o.networkError(err, current);
    }
    const location = res.headers.get('location');
    if (res.status < 300 || res.status > 399 || location === null) return { res, url: current };
    await res.body?.cancel().catch(() => undefined);
    if (hop >= o.maxRedirects) throw o.redirectError(`more than ${o.maxRedirects} redirects`);
    try {
      current = new URL(location, current);
    } catch {
      throw o.redirectError(`redirect to an invalid URL ${JSON.stringify(location)}`);
    }
  }
}

/** The first errno-style code in an error's cause chain (fetch wraps socket errors as TypeError('fetch failed', { cause })). */
export function networkCode(err: unknown): string | undefined {
  let cur: unknown = err;
  for (let depth = 0; depth < 5 && cur !== undefined && cur !== null; depth++) {
    const e = cur as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof e.code === 'string') return e.code;
    if (Array.isArray(e.errors) && e.errors.length > 0) {
      const inner = networkCode(e.errors[0]);
      if (inner !== undefined) return inner;
    }
    cur = e.cause;
  }
  return undefined;
}

export const TLS_CODE =
  /^(?:ERR_SSL_|ERR_TLS_|CERT_|EPROTO$|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|ERR_CERT|HOSTNAME_MISMATCH$)/;

function describeCode(code: string | undefined): string | undefined {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name does not resolve';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connection timed out';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      return code !== undefined && TLS_CODE.test(code) ? `TLS handshake failed (${code})` : undefined;
  }
}

/** A network error in words ("connection refused"), naming the proxy when it went through one. */
export function describeNetworkError(err: unknown): string {
  const why = describeCode(networkCode(err)) ?? errorMessage(err);
  return err instanceof ProxyConnectionError ? `${why} (through proxy ${err.proxy})` : why;
}

/** True for the error of a connection closed before the body was complete. */
export function isCutConnection(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  // undici reports it as TypeError('terminated'); node:http as Error('aborted') with ECONNRESET.
  return (
    err.message === 'terminated' || err.message === 'aborted' || code === 'UND_ERR_SOCKET' || code === 'ECONNRESET'
  );
}

/** The Content-Length of an undecoded body, or undefined. */
export function contentLength(res: Response): number | undefined {
  const encoding = res.headers.get('content-encoding');
  // A decoded body has a different length than the declared one.
  if (encoding !== null && encoding.toLowerCase() !== 'identity') return undefined;
  const raw = res.headers.get('content-length');
  return raw !== null && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : undefined;
}

/**
 * The whole body, refusing more than `max` bytes (declared or streamed):
 * `tooBig` makes the error. Other read errors propagate as they are.
 */
export async function readLimited(res: Response, max: number, tooBig: () => Error): Promise<Buffer> {
  const declared = contentLength(res);
  if (declared !== undefined && declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw tooBig();
  }
  if (res.body === null) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const step = await reader.read();
      if (step.done) break;
      total += step.value.byteLength;
      if (total > max) throw tooBig();
      chunks.push(Buffer.from(step.value.buffer, step.value.byteOffset, step.value.byteLength));
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks);
}

export interface BodyStreamOptions {
  /** Declared length: a body that ends short of it fails with `truncated`. */
  size: number | undefined;
  signal: AbortSignal | undefined;
  /** The error for a body that ended early or whose connection was cut. */
  truncated: (got: number) => AppError;
  /** The error for any other read failure. */
  failed: (err: unknown, got: number) => AppError;
}

/**
 * The response body as a Node stream of bytes. Destroying it cancels the
 * body at once, even while a read is pending, so a stalled server does not
 * keep the connection alive.
 */
export class BodyStream extends Readable {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #o: BodyStreamOptions;
  #got = 0;

  constructor(res: Response, o: BodyStreamOptions) {
    super();
    if (res.body === null) throw new Error('BodyStream needs a response with a body');
    this.#reader = res.body.getReader();
    this.#o = o;
  }

  override _read(): void {
    this.#reader.read().then(
      (step) => {
        if (step.done) {
          if (this.#o.size !== undefined && this.#got < this.#o.size) this.destroy(this.#o.truncated(this.#got));
          else this.push(null);
          return;
        }
        this.#got += step.value.byteLength;
        this.push(Buffer.from(step.value.buffer, step.value.byteOffset, step.value.byteLength));
      },
      (err: unknown) => this.destroy(this.#readError(err)),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#reader.cancel().catch(() => undefined);
    callback(err);
  }

  #readError(err: unknown): AppError {
    if (this.#o.signal?.aborted || isAbortError(err)) return cancelled();
    if (isCutConnection(err)) return this.#o.truncated(this.#got);
    return this.#o.failed(err, this.#got);
  }
}

/** A body stream for a response that may have no body at all. */
export function bodyStream(res: Response, o: BodyStreamOptions): Readable {
  return res.body === null ? Readable.from([], { objectMode: false }) : new BodyStream(res, o);
}
