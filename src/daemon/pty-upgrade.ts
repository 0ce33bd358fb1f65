import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { HEADER_OP_ID, HEADER_VERSION, parseLine, PTY_UPGRADE } from '../api/protocol.js';
import { AppError, badRequest } from '../errors.js';
import type { Logger } from '../services/context.js';
import { newOpId, type Call } from './dispatch.js';
import { rawResponse, Refusal } from './http.js';
import { toWireError } from './wire-error.js';

/*
 * A pty request (`Upgrade: banger-pty`, api/protocol.ts): its params are its body (Content-Length,
 * within the request limit, read off the socket node:http hands over); it is answered like any
 * request until its handler opens it, then `101` and raw bytes both ways.
 */

export interface PtyCallDeps {
  maxBytes: number;
  /** The request was read in full (the request timeout no longer applies). */
  requestRead(): void;
  /** What a request not complete in time gets instead of the default answer. */
  setTimeout(fn: (e: AppError) => void): void;
  refuse(r: Refusal): void;
  log: Logger;
}

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
};

/** The Call of a pty request, or undefined when it was refused already. */
export function ptyCall(
  req: IncomingMessage,
  sock: Socket,
  head: Buffer,
  method: string,
  d: PtyCallDeps,
): Call | undefined {
  if (req.headers['transfer-encoding'] !== undefined) {
    d.refuse(new Refusal(400, badRequest('a pty request has a Content-Length body, not a chunked one')));
    return undefined;
  }
  const length = Number(req.headers['content-length'] ?? 0);
  if (!Number.isSafeInteger(length) || length < 0) {
    d.refuse(new Refusal(400, badRequest('a bad Content-Length')));
    return undefined;
  }
  if (length > d.maxBytes) {
    d.refuse(
      new Refusal(
        413,
        badRequest(`request is longer than ${d.maxBytes} bytes`, 'requests are small JSON objects, at most 1 MiB each'),
      ),
    );
    return undefined;
  }
  let upgraded = false;
  let rest: Buffer = Buffer.alloc(0);
  const body = new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const take = (c: Buffer): void => {
      const need = length - got;
      parts.push(c.subarray(0, need));
      got += Math.min(need, c.length);
      if (got < length) return;
      sock.off('data', take);
      sock.pause();
      // Bytes sent past the body (terminal input before the 101) go to the terminal once it opens.
      if (c.length > need) rest = Buffer.from(c.subarray(need));
      d.requestRead();
      resolve(Buffer.concat(parts));
    };
    sock.on('close', () => reject(new AppError('cancelled', 'the client went away')));
    if (length === 0) {
      rest = head;
      d.requestRead();
      return resolve(Buffer.alloc(0));
    }
    sock.on('data', take);
    if (head.length > 0) take(head);
  });
  body.catch(() => undefined);
  d.setTimeout((e) => {
    if (!upgraded) rawResponse(sock, 408, { error: toWireError(e, newOpId(), d.log) });
  });
  return {
    method,
    version: header(req, HEADER_VERSION),
    opId: header(req, HEADER_OP_ID),
    params: async () => {
      const b = await body;
      return b.length === 0 ? undefined : parseLine(b);
    },
    reply: {
      begin: () => undefined,
      event: () => undefined,
      end: (frame, status, opId) => {
        if (!upgraded) return rawResponse(sock, status, frame, { [HEADER_OP_ID]: opId });
        if (!sock.destroyed) sock.end(() => sock.destroy());
      },
      onGone: (cb) => sock.on('close', cb),
    },
    pty: {
      open: (headers) => {
        upgraded = true;
        const lines = Object.entries({ connection: 'Upgrade', upgrade: PTY_UPGRADE, ...headers }).map(
          ([k, v]) => `${k}: ${v}\r\n`,
        );
        sock.write(`HTTP/1.1 101 Switching Protocols\r\n${lines.join('')}\r\n`);
        if (rest.length > 0) sock.unshift(rest);
        return sock;
      },
    },
  };
}
