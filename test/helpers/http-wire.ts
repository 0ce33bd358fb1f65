import { createConnection, type Socket } from 'node:net';

/*
 * Raw HTTP/1.1 on the daemon's socket, for tests that must send what a well-behaved
 * client would not (api/protocol.ts, docs/http-api.md).
 */

export interface WireRequest {
  method: string;
  params?: unknown;
  version?: string;
  op_id?: string;
}

function headerLines(r: WireRequest, extra: Record<string, string>): string {
  const h: Record<string, string> = { host: 'banger', ...extra };
  if (r.version !== undefined) h['banger-version'] = r.version;
  if (r.op_id !== undefined) h['banger-op-id'] = r.op_id;
  return Object.entries(h)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
}

/** `POST /v1/<method>` with the params as its JSON body (`body` replaces it, raw). */
export function post(r: WireRequest, extra: Record<string, string> = {}, body?: string | Buffer): Buffer {
  const b =
    body === undefined ? Buffer.from(r.params === undefined ? '' : JSON.stringify(r.params)) : Buffer.from(body);
  const head = `POST /v1/${r.method} HTTP/1.1\r\n${headerLines(r, extra)}content-type: application/json\r\ncontent-length: ${b.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), b]);
}

/** A streaming method's upgrade request followed by its params line. */
export function upgrade(r: WireRequest, extra: Record<string, string> = {}): string {
  return `POST /v1/${r.method} HTTP/1.1\r\n${headerLines(r, { connection: 'Upgrade', upgrade: 'banger-stream', ...extra })}\r\n${JSON.stringify(r.params ?? {})}\n`;
}

export interface Response {
  /** 0 when no status line came. */
  status: number;
  headers: Record<string, string>;
  /** The body's frames (one JSON object per line; a line that is not JSON is kept as {unparseable}). */
  lines: unknown[];
  /** The body could not be read as HTTP (bad chunking, no header end). */
  malformed: boolean;
}

/** Undoes chunked transfer coding; undefined if `body` is not well-formed. */
export function dechunk(body: Buffer): Buffer | undefined {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = parseInt(body.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size < 0) return undefined;
    if (size === 0) return Buffer.concat(out);
    out.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
    if (at > body.length) return undefined;
  }
}

const frames = (text: string): unknown[] =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as unknown;
      } catch {
        return { unparseable: l.slice(0, 200) };
      }
    });

/** Parses everything a daemon wrote on one connection (an upgraded one: the frames after the 101). */
export function parseResponse(raw: Buffer): Response {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, lines: [], malformed: raw.length > 0 };
  const [statusLine, ...rest] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of rest) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  let body: Buffer | undefined = raw.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  if (body === undefined) return { status, headers, lines: [], malformed: true };
  return { status, headers, lines: frames(body.toString('utf8')), malformed: false };
}

export type Target = string | { host: string; port: number };

export const dial = (target: Target): Socket =>
  typeof target === 'string' ? createConnection(target) : createConnection(target.port, target.host);

/**
 * Writes `bytes` (each piece its own write) and reads until the daemon closes the
 * connection (or `deadlineMs`); `closed` is false if the deadline came first.
 */
export function exchange(
  target: Target,
  bytes: string | Buffer | (string | Buffer)[],
  deadlineMs = 20_000,
): Promise<Response & { closed: boolean; raw: Buffer }> {
  return new Promise((resolve) => {
    const sock = dial(target);
    const parts: Buffer[] = [];
    let size = 0;
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      const raw = Buffer.concat(parts);
      resolve({ ...parseResponse(raw), closed, raw });
    };
    const timer = setTimeout(() => {
      sock.destroy();
      finish();
    }, deadlineMs);
    sock.on('data', (d: Buffer) => {
      if (size < 8 * 1024 * 1024) parts.push(d);
      size += d.length;
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      closed = true;
      finish();
    });
    sock.on('connect', () => {
      for (const b of Array.isArray(bytes) ? bytes : [bytes]) sock.write(b);
    });
  });
}
