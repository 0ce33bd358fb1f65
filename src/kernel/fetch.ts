import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { addAbortSignal, Readable, Transform, type TransformCallback } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { AppError, badRequest, operationFailed } from '../errors.js';
import { hostPort, insecureHostSet, plainHttpAllowed, plainHttpRefused } from '../net/plain-http.js';

/*
 * Downloads for kernel tarballs and catalog files. Node 20's global fetch does
 * not honour HTTPS_PROXY/HTTP_PROXY/NO_PROXY; proxy support is out of scope,
 * so hosts that need a proxy are unreachable.
 */

export interface FetchPolicy {
  /** host:port pairs allowed over plain http besides loopback. */
  insecureHosts: readonly string[];
}

const MAX_REDIRECTS = 20;
const URL_HINT = 'use an https:// URL, or a file:// URL / local path for a file on this host';

const cancelled = (): AppError => new AppError('cancelled', 'operation cancelled');

/**
 * Checks a URL before any download: https always; http only for loopback
 * hosts (127.0.0.0/8, ::1, localhost) or a host:port listed in
 * policy.insecureHosts; file:// for local paths. Anything else is a
 * badRequest with a hint.
 */
export function checkUrl(url: string, policy: FetchPolicy): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw badRequest(`not a valid URL: ${JSON.stringify(url)}`, URL_HINT);
  }
  if (u.username !== '' || u.password !== '') {
    throw badRequest(
      `refusing a URL with embedded credentials: ${u.protocol}//${u.host}${u.pathname}`,
      'put the file somewhere reachable without credentials in the URL',
    );
  }
  switch (u.protocol) {
    case 'https:':
      if (u.hostname === '') throw badRequest(`URL has no host: ${url}`, URL_HINT);
      return u;
    case 'http:':
      if (plainHttpAllowed(u, insecureHostSet(policy.insecureHosts))) return u;
      throw plainHttpRefused(
        `refusing to download over plain http from ${hostPort(u)}: ${url}`,
        u,
        'use an https:// URL; ',
      );
    case 'file:':
      if (u.hostname !== '' && u.hostname !== 'localhost') {
        throw badRequest(
          `file:// URLs must name a local path, not host ${JSON.stringify(u.hostname)}: ${url}`,
          'write it as file:///absolute/path',
        );
      }
      return u;
    default:
      throw badRequest(`unsupported URL scheme ${JSON.stringify(u.protocol)}: ${url}`, URL_HINT);
  }
}

/** A pass-through Transform that sha256-hashes and counts the bytes; `digest()` is valid after the stream ended. */
export class HashingStream extends Transform {
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;
  #digest: string | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash.digest('hex');
    callback();
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

const truncated = (got: number, size: number | undefined, url: string): AppError =>
  operationFailed(
    size === undefined
      ? `download truncated: the connection closed after ${got} bytes from ${url}`
      : `download truncated: got ${got} of ${size} bytes from ${url}`,
    { hint: 'the server or network cut the transfer; retry' },
  );

function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return cause !== undefined && cause !== err.message ? `${err.message}: ${cause}` : err.message;
}

const isAbortError = (err: unknown): boolean =>
  err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');

async function openFile(
  url: URL,
  signal: AbortSignal | undefined,
): Promise<{ stream: Readable; size: number | undefined }> {
  const path = fileURLToPath(url);
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw operationFailed(`cannot open ${path}: ${code === 'ENOENT' ? 'no such file' : errorMessage(err)}`, {
      cause: err,
    });
  }
  let size: number;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw badRequest(`${path} is not a regular file`);
    if (signal?.aborted) throw cancelled();
    size = st.size;
  } catch (err) {
    await fh.close();
    throw err;
  }
  const stream = fh.createReadStream();
  if (signal !== undefined) addAbortSignal(signal, stream);
  return { stream, size };
}

function contentLength(res: Response): number | undefined {
  const encoding = res.headers.get('content-encoding');
  // A decoded body has a different length than the declared one.
  if (encoding !== null && encoding.toLowerCase() !== 'identity') return undefined;
  const raw = res.headers.get('content-length');
  return raw !== null && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : undefined;
}

/**
 * Follows redirects by hand so that every hop passes checkUrl: fetch's own
 * following would accept an https → plain-http downgrade to any host. A hop
 * over http is allowed for loopback, the original URL's own host:port, and
 * policy.insecureHosts.
 */
async function fetchFollowing(
  start: URL,
  signal: AbortSignal | undefined,
  policy: FetchPolicy | undefined,
): Promise<Response> {
  const hopPolicy: FetchPolicy = { insecureHosts: [...(policy?.insecureHosts ?? []), hostPort(start)] };
  let current = start;
  for (let hop = 0; ; hop++) {
    let res: Response;
    try {
      res = await fetch(current, { signal, redirect: 'manual', headers: { 'accept-encoding': 'identity' } });
    } catch (err) {
      if (signal?.aborted || isAbortError(err)) throw cancelled();
      throw operationFailed(`cannot download ${start.href}: ${errorMessage(err)}`, { cause: err });
    }
    const location = res.headers.get('location');
    if (res.status < 300 || res.status > 399 || location === null) return res;
    await res.body?.cancel().catch(() => undefined);
    if (hop >= MAX_REDIRECTS)
      throw operationFailed(`cannot download ${start.href}: more than ${MAX_REDIRECTS} redirects`);
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw operationFailed(`cannot download ${start.href}: redirect to an invalid URL ${JSON.stringify(location)}`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw operationFailed(`cannot download ${start.href}: redirect to unsupported URL ${next.href}`);
    }
    try {
      checkUrl(next.href, hopPolicy);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      throw new AppError(
        'bad_request',
        `cannot download ${start.href}: redirected to ${next.href}, which is refused: ${err.message}`,
        err.hint === undefined ? {} : { hint: err.hint },
      );
    }
    current = next;
  }
}

/**
 * The response body as bytes, with cut connections and short bodies reported
 * as truncation. Destroying it cancels the body at once, even while a read is
 * pending, so a stalled server does not keep the connection alive.
 */
class BodyStream extends Readable {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #size: number | undefined;
  readonly #url: string;
  readonly #signal: AbortSignal | undefined;
  #got = 0;

  constructor(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    size: number | undefined,
    url: string,
    signal: AbortSignal | undefined,
  ) {
    super();
    this.#reader = reader;
    this.#size = size;
    this.#url = url;
    this.#signal = signal;
  }

  override _read(): void {
    this.#reader.read().then(
      (step) => {
        if (step.done) {
          if (this.#size !== undefined && this.#got < this.#size)
            this.destroy(truncated(this.#got, this.#size, this.#url));
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
    if (this.#signal?.aborted || isAbortError(err)) return cancelled();
    // undici reports a connection closed mid-body as TypeError('terminated').
    if (
      err instanceof Error &&
      (err.message === 'terminated' || (err as NodeJS.ErrnoException).code === 'UND_ERR_SOCKET')
    ) {
      return truncated(this.#got, this.#size, this.#url);
    }
    return operationFailed(`download of ${this.#url} failed after ${this.#got} bytes: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

/**
 * Opens the URL as a Readable stream of bytes: Node's global fetch for
 * http/https (redirects followed, each hop checked as described at
 * fetchFollowing; `policy` adds allowed plain-http hosts for those hops),
 * fs for file://. Non-2xx is an operationFailed naming the URL and status.
 * `size` is the Content-Length (or file size) when known; a body shorter
 * than the declared length fails the stream with a "download truncated" error.
 */
export async function openUrl(
  url: URL,
  signal?: AbortSignal,
  policy?: FetchPolicy,
): Promise<{ stream: Readable; size: number | undefined }> {
  if (signal?.aborted) throw cancelled();
  if (url.protocol === 'file:') return openFile(url, signal);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw badRequest(`unsupported URL scheme ${JSON.stringify(url.protocol)}: ${url.href}`, URL_HINT);
  }
  const res = await fetchFollowing(url, signal, policy);
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    const where = res.url !== '' && res.url !== url.href ? ` (redirected to ${res.url})` : '';
    throw operationFailed(
      `download of ${url.href} failed: HTTP ${res.status}${res.statusText === '' ? '' : ` ${res.statusText}`}${where}`,
      {
        hint:
          res.status === 404
            ? 'check the URL; the file may have moved'
            : 'check the URL and that the server is reachable, then retry',
      },
    );
  }
  const size = contentLength(res);
  const stream =
    res.body === null
      ? Readable.from([], { objectMode: false })
      : new BodyStream(res.body.getReader(), size, url.href, signal);
  return { stream, size };
}
