import { open } from 'node:fs/promises';
import { addAbortSignal, type Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { AppError, badRequest, cancelled, errorMessage, operationFailed } from '../errors.js';
import { HashingStream } from './hashing.js';
import { bodyStream, contentLength, describeNetworkError, fetchFollowing } from './http.js';
import { hostPort, insecureHostSet, plainHttpAllowed, plainHttpRefused } from './plain-http.js';
import { httpTransport, type HttpFetch } from './transport.js';

/*
 * The general downloader: kernel tarballs, image bundles and catalog files.
 * https anywhere, plain http only to loopback and insecure_registries, file://
 * for local paths; proxies as net/proxy.ts describes.
 */

export interface FetchPolicy {
  /** host:port pairs allowed over plain http besides loopback. */
  insecureHosts: readonly string[];
}

export interface DownloadOptions {
  signal?: AbortSignal | undefined;
  /** Adds allowed plain-http hosts for redirect hops. */
  policy?: FetchPolicy | undefined;
  /** The HTTP transport (default: node:http with no proxy; the daemon passes one with its proxy settings). */
  fetch?: HttpFetch | undefined;
  /** Refuse more than this many bytes: declared up front, or counted while streaming. */
  maxBytes?: number | undefined;
  /** Called as bytes arrive with the count so far and the total when known. */
  onProgress?: ((got: number, total: number | undefined) => void) | undefined;
}

const MAX_REDIRECTS = 20;
const URL_HINT = 'use an https:// URL, or a file:// URL / local path for a file on this host';

let defaultTransport: HttpFetch | undefined;
const directTransport = (): HttpFetch => (defaultTransport ??= httpTransport());

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

const truncated = (got: number, size: number | undefined, url: string): AppError =>
  operationFailed(
    size === undefined
      ? `download truncated: the connection closed after ${got} bytes from ${url}`
      : `download truncated: got ${got} of ${size} bytes from ${url}`,
    { hint: 'the server or network cut the transfer; retry' },
  );

const tooLarge = (url: string, max: number): AppError =>
  operationFailed(`${url} is larger than ${max} bytes; refusing to download it`, {
    hint: 'check the URL points at the file you meant',
  });

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

/**
 * Opens the URL as a Readable stream of bytes: the HTTP transport for
 * http/https (redirects followed, each hop checked with checkUrl; a hop over
 * http is allowed for loopback, the original URL's own host:port, and
 * o.policy's hosts), fs for file://. Non-2xx is an operationFailed naming the
 * URL and status. `size` is the Content-Length (or file size) when known; a
 * body shorter than the declared length fails the stream with a "download
 * truncated" error, a longer one than o.maxBytes with "larger than".
 */
export async function openUrl(
  url: URL,
  o: DownloadOptions = {},
): Promise<{ stream: Readable; size: number | undefined }> {
  const { signal, maxBytes } = o;
  if (signal?.aborted) throw cancelled();
  let opened: { stream: Readable; size: number | undefined };
  if (url.protocol === 'file:') opened = await openFile(url, signal);
  else if (url.protocol === 'http:' || url.protocol === 'https:') opened = await openHttp(url, o);
  else throw badRequest(`unsupported URL scheme ${JSON.stringify(url.protocol)}: ${url.href}`, URL_HINT);
  if (maxBytes !== undefined && opened.size !== undefined && opened.size > maxBytes) {
    opened.stream.destroy();
    throw tooLarge(url.href, maxBytes);
  }
  if (maxBytes === undefined && o.onProgress === undefined) return opened;
  // One counting pass-through for the cap and the progress of both http and file downloads.
  const { onProgress } = o;
  const counter = new HashingStream({
    ...(maxBytes === undefined ? {} : { maxBytes, tooBig: () => tooLarge(url.href, maxBytes) }),
    ...(onProgress === undefined ? {} : { onBytes: (got: number) => onProgress(got, opened.size) }),
  });
  opened.stream.on('error', (err) => counter.destroy(err));
  counter.on('close', () => opened.stream.destroy());
  opened.stream.pipe(counter);
  return { stream: counter, size: opened.size };
}

async function openHttp(url: URL, o: DownloadOptions): Promise<{ stream: Readable; size: number | undefined }> {
  const hopPolicy: FetchPolicy = { insecureHosts: [...(o.policy?.insecureHosts ?? []), hostPort(url)] };
  const { res, url: answered } = await fetchFollowing(url, {
    fetch: o.fetch ?? directTransport(),
    headers: { 'accept-encoding': 'identity' },
    signal: o.signal,
    maxRedirects: MAX_REDIRECTS,
    checkHop: (next) => {
      if (next === url) return;
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw operationFailed(`cannot download ${url.href}: redirect to unsupported URL ${next.href}`);
      }
      try {
        checkUrl(next.href, hopPolicy);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        throw new AppError(
          'bad_request',
          `cannot download ${url.href}: redirected to ${next.href}, which is refused: ${err.message}`,
          err.hint === undefined ? {} : { hint: err.hint },
        );
      }
    },
    networkError: (err) =>
      operationFailed(`cannot download ${url.href}: ${describeNetworkError(err)}`, {
        cause: err,
        hint: 'check the URL and that the server is reachable (and HTTPS_PROXY/NO_PROXY, behind a proxy), then retry',
      }),
    redirectError: (why) => operationFailed(`cannot download ${url.href}: ${why}`),
  });
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    const where = answered.href !== url.href ? ` (redirected to ${answered.href})` : '';
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
  const stream = bodyStream(res, {
    size,
    signal: o.signal,
    truncated: (got) => truncated(got, size, url.href),
    failed: (err, got) =>
      operationFailed(`download of ${url.href} failed after ${got} bytes: ${errorMessage(err)}`, { cause: err }),
  });
  return { stream, size };
}

/** The whole file at `url` as text, at most `maxBytes` bytes. */
export async function downloadText(url: URL, maxBytes: number, o: DownloadOptions = {}): Promise<string> {
  const { stream } = await openUrl(url, { ...o, maxBytes });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
