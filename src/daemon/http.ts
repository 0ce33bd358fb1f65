import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { API_PREFIX, encodeLine, FRAMES_CONTENT_TYPE, HTTP_STATUS } from '../api/protocol.js';
import { AppError, badRequest, precondition } from '../errors.js';

/*
 * The HTTP edge of the daemon's server (api/protocol.ts, docs/http-api.md): which requests
 * are let in, how a request's target names a method, bounded body reads, and responses
 * written straight to a socket (before node:http has a response object, or after an upgrade).
 */

/** A request refused before any method runs: the error and the HTTP status it goes with. */
export class Refusal {
  constructor(
    readonly status: number,
    readonly error: AppError,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** Checks a request's Authorization header (the TCP listener's bearer token, daemon/api-token.ts). */
export interface TokenCheck {
  check(authorization: string | undefined): boolean;
}

/** GET of the OpenAPI document (api/openapi.ts). */
export const OPENAPI_PATH = `${API_PREFIX}openapi.json`;

/**
 * What any request must pass, on either listener: no `Origin` header (a web page's request:
 * the API is for local programs, and a browser must not reach it), and on the TCP listener the
 * bearer token. Undefined when it may go on.
 */
export function gate(req: IncomingMessage, auth: TokenCheck | undefined): Refusal | undefined {
  if (req.headers.origin !== undefined)
    return new Refusal(
      403,
      badRequest(
        'requests with an Origin header (from a web page) are refused',
        'the banger API is for local programs; send requests without an Origin header',
      ),
    );
  if (auth && !auth.check(req.headers.authorization))
    return new Refusal(
      401,
      precondition(
        req.headers.authorization === undefined ? 'missing bearer token' : 'wrong bearer token',
        'send "Authorization: Bearer <token>"; `banger api token` prints the token',
      ),
      { 'www-authenticate': 'Bearer' },
    );
  return undefined;
}

/** The method a request's target names (`/v1/<method>`), or a refusal. */
export function methodOf(req: IncomingMessage): string | Refusal {
  const url = req.url ?? '';
  const path = url.split('?')[0] ?? '';
  if (!path.startsWith(API_PREFIX))
    return new Refusal(
      404,
      badRequest(`no such path ${JSON.stringify(shortPath(path))}`, `POST ${API_PREFIX}<method>`),
    );
  let method: string;
  try {
    method = decodeURIComponent(path.slice(API_PREFIX.length));
  } catch {
    return new Refusal(400, badRequest('the request path is not valid percent-encoding'));
  }
  if (req.method !== 'POST')
    return new Refusal(
      405,
      badRequest(`${req.method ?? '?'} is not allowed here`, `methods are called with POST ${API_PREFIX}<method>`),
    );
  return method;
}

const shortPath = (p: string): string => (p.length > 80 ? `${p.slice(0, 80)}…` : p);

/** Reads a request body of at most `max` bytes; a longer one is refused (413) as soon as it shows. */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const tooLong = (): Refusal =>
    new Refusal(
      413,
      badRequest(`request is longer than ${max} bytes`, 'requests are small JSON objects, at most 1 MiB each'),
    );
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) return Promise.reject(tooLong());
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.pause();
        req.removeAllListeners('data');
        return reject(tooLong());
      }
      parts.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

/** The status an error is answered with (api/protocol.ts HTTP_STATUS). */
export const statusOf = (code: AppError['code']): number => HTTP_STATUS[code];

/**
 * Writes a complete response of one frame to a raw socket and closes it: for a request
 * node:http could not parse, one that timed out before its headers, an upgrade refused, or a body too long.
 */
export function rawResponse(
  sock: Socket,
  status: number,
  frame: unknown,
  headers: Record<string, string> = {},
  lingerMs = 0,
): void {
  if (!sock.writable) return void sock.destroy();
  const body = encodeLine(frame);
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    `content-type: ${FRAMES_CONTENT_TYPE}`,
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  const text = `${head.join('\r\n')}\r\n\r\n${body}`;
  if (lingerMs === 0) return void sock.end(text, () => sock.destroy());
  // A client still sending (a body over the limit) would get a reset, and lose this answer, if the
  // socket closed now: what it sends is read and dropped until it closes, for at most lingerMs.
  sock.end(text);
  const timer = setTimeout(() => sock.destroy(), lingerMs);
  timer.unref();
  sock.on('close', () => clearTimeout(timer));
}
