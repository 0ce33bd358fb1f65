import http, { type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { Readable } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { operationFailed } from '../errors.js';
import { hostPort } from './plain-http.js';
import { NO_PROXY_SETTINGS, proxyFor, redactProxy, type ProxySettings, type ProxyTarget } from './proxy.js';

/*
 * The HTTP transport of every download: one GET on node:http/https that
 * answers with a WHATWG Response, like fetch, but honours the proxy settings
 * (net/proxy.ts), which Node 20's global fetch ignores. http:// URLs go to
 * the proxy as absolute-form requests; https:// URLs go through a CONNECT
 * tunnel, so TLS stays end to end. Redirects are never followed here
 * (net/http.ts follows them, checking every hop).
 *
 * Written on node:http rather than the undici package: undici 7 (the last
 * major for Node 20) needs Node >= 20.18.1, and its ProxyAgent cannot honour
 * the loopback rule or NO_PROXY ports/ranges by itself; a GET with CONNECT is
 * small enough to own.
 */

export interface HttpRequestInit {
  headers: Record<string, string>;
  redirect: 'manual';
  signal?: AbortSignal | undefined;
}

/** The one fetch shape banger downloads use; the global fetch fits it (tests inject their own). */
export type HttpFetch = (url: URL, init: HttpRequestInit) => Promise<Response>;

export interface TransportOptions {
  proxy: ProxySettings;
  /** DNS lookup for direct connections and for the proxy's own address (tests map names to 127.0.0.1). */
  lookup?: LookupFunction;
  /** Extra trust for TLS (tests). */
  ca?: string | Buffer;
  /** A connection idle this long fails the request (default 120 s). */
  idleTimeoutMs?: number;
}

const IDLE_TIMEOUT_MS = 120_000;

/** An error raised while talking to a proxy: callers name the proxy in their message. */
export class ProxyConnectionError extends Error {
  readonly proxy: string;
  constructor(proxy: ProxyTarget, err: unknown) {
    super(err instanceof Error ? err.message : String(err), { cause: err });
    this.name = 'ProxyConnectionError';
    this.proxy = `${redactProxy(proxy.url)} (${proxy.setting})`;
  }
}

const stripBrackets = (h: string): string => (h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h);

function decoded(res: IncomingMessage): Readable {
  switch ((res.headers['content-encoding'] ?? '').toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return res.pipe(createGunzip());
    case 'deflate':
      return res.pipe(createInflate());
    case 'br':
      return res.pipe(createBrotliDecompress());
    default:
      return res;
  }
}

function toResponse(res: IncomingMessage): Response {
  const headers = new Headers();
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
    try {
      headers.append(res.rawHeaders[i] as string, res.rawHeaders[i + 1] as string);
    } catch {
      /* a header the WHATWG rules refuse is dropped, as fetch would */
    }
  }
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 599) {
    res.destroy();
    throw operationFailed(`the server answered with an invalid HTTP status ${status}`);
  }
  const nullBody = status === 204 || status === 205 || status === 304;
  if (nullBody) res.resume();
  const body = nullBody ? null : (Readable.toWeb(decoded(res)) as ReadableStream<Uint8Array>);
  return new Response(body, { status, statusText: res.statusMessage ?? '', headers });
}

/** An HttpFetch on node:http/https that goes through the proxy `proxyFor()` picks for each URL. */
export function httpTransport(opts: TransportOptions = { proxy: NO_PROXY_SETTINGS }): HttpFetch {
  const idle = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const extra: RequestOptions & ConnectionOptions = {
    ...(opts.lookup === undefined ? {} : { lookup: opts.lookup }),
    ...(opts.ca === undefined ? {} : { ca: opts.ca }),
  };

  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        reject(new TypeError(`unsupported protocol ${url.protocol}`));
        return;
      }
      let target: ProxyTarget | undefined;
      try {
        target = proxyFor(opts.proxy, url);
      } catch (err) {
        reject(err);
        return;
      }
      const fail = (err: unknown): void => reject(target === undefined ? err : new ProxyConnectionError(target, err));
      const headers: Record<string, string> = { 'accept-encoding': 'identity', ...init.headers };
      const signal = init.signal ?? undefined;
      const watch = (req: ClientRequest): void => {
        req.setTimeout(idle, () =>
          req.destroy(Object.assign(new Error(`no data for ${idle / 1000} s`), { code: 'ETIMEDOUT' })),
        );
        req.on('error', fail);
        req.on('response', (res) => {
          res.setTimeout(idle, () =>
            res.destroy(Object.assign(new Error(`no data for ${idle / 1000} s`), { code: 'ETIMEDOUT' })),
          );
          try {
            resolve(toResponse(res));
          } catch (err) {
            reject(err);
          }
        });
        req.end();
      };

      if (target === undefined) {
        const mod = url.protocol === 'https:' ? https : http;
        watch(mod.request(url, { method: 'GET', headers, signal, ...extra }));
        return;
      }
      const proxy = target.url;
      const proxyMod = proxy.protocol === 'https:' ? https : http;
      const proxyAddr = { host: target.host, port: target.port, ...extra };
      const auth = target.authorization === undefined ? {} : { 'proxy-authorization': target.authorization };
      if (url.protocol === 'http:') {
        // Plain http: the proxy gets the absolute URL and fetches it.
        watch(
          proxyMod.request({
            ...proxyAddr,
            method: 'GET',
            path: url.href,
            headers: { ...headers, host: url.host, ...auth },
            signal,
          }),
        );
        return;
      }
      // https: a CONNECT tunnel to host:port, then TLS with the origin inside it.
      const authority = hostPort(url);
      const connect = proxyMod.request({
        ...proxyAddr,
        method: 'CONNECT',
        path: authority,
        headers: { host: authority, ...auth },
        agent: false,
        signal,
      });
      connect.setTimeout(idle, () =>
        connect.destroy(Object.assign(new Error('proxy did not answer CONNECT'), { code: 'ETIMEDOUT' })),
      );
      connect.on('error', fail);
      connect.on('connect', (res: IncomingMessage, socket) => {
        connect.setTimeout(0);
        if (res.statusCode !== 200) {
          socket.destroy();
          const status = `${res.statusCode ?? '?'}${res.statusMessage ? ` ${res.statusMessage}` : ''}`;
          reject(
            operationFailed(
              `proxy ${redactProxy(proxy)} (${target.setting}) refused a tunnel to ${authority}: ${status}`,
              {
                hint:
                  res.statusCode === 407
                    ? `the proxy wants credentials: set ${target.setting} to http://USER:PASSWORD@HOST:PORT`
                    : `check ${target.setting}, or list ${url.hostname} in NO_PROXY if it is reachable directly`,
              },
            ),
          );
          return;
        }
        const host = stripBrackets(url.hostname);
        const tls: ConnectionOptions = {
          socket,
          ...(isIP(host) === 0 ? { servername: host } : {}),
          host,
          ALPNProtocols: ['http/1.1'],
          ...(opts.ca === undefined ? {} : { ca: opts.ca }),
        };
        watch(
          https.request(url, {
            method: 'GET',
            headers,
            signal,
            createConnection: () => tlsConnect(tls),
          }),
        );
      });
      connect.end();
    });
}
