import { chmod, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { BINARY_FRAMES_CONTENT_TYPE, encodeFrame } from '../api/binframes.js';
import { openApiDocument } from '../api/openapi.js';
import {
  encodeLine,
  FRAMES_CONTENT_TYPE,
  HEADER_OP_ID,
  HEADER_VERSION,
  parseLine,
  PTY_UPGRADE,
  STREAM_UPGRADE,
  WIRE_LIMITS,
} from '../api/protocol.js';
import { AppError, badRequest } from '../errors.js';
import type { Logger } from '../services/context.js';
import type { OperationRepo } from '../store/operations.js';
import { Dispatcher, newOpId, USAGE, type Call, type Reply } from './dispatch.js';
import type { Handlers } from './handlers.js';
import { gate, methodOf, OPENAPI_PATH, rawResponse, readBody, Refusal, type TokenCheck } from './http.js';
import { ptyCall } from './pty-upgrade.js';
import { UpgradedInput } from './stream.js';
import { shorten, toWireError, zodMessage } from './wire-error.js';

export type { StreamChannel } from './stream.js';
export type * from './handlers.js';
export { newOpId } from './dispatch.js';

type WireLimits = Record<keyof typeof WIRE_LIMITS, number>;

export { shorten, toWireError, zodMessage };

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
};

/**
 * The daemon's HTTP/1.1 server (api/protocol.ts, docs/http-api.md) on its Unix socket and,
 * optionally, a TCP listener that requires a bearer token: one request per connection, op
 * ids, validation, progress events, cancellation when the client goes away, and the only
 * place where errors become wire errors.
 */
export class DaemonServer {
  private readonly servers: Server[] = [];
  readonly inflight = new Map<string, { method: string; started: number }>();
  private readonly limits: WireLimits;
  /** What a connection gets when its request is not complete in time (daemon/http.ts). */
  private readonly onTimeout = new WeakMap<Socket, (e: AppError) => void>();
  private readonly timers = new WeakMap<Socket, NodeJS.Timeout>();
  private openapi: string | undefined;
  private readonly dispatch: Dispatcher;

  constructor(
    private readonly socketPath: string,
    private readonly version: string,
    handlers: Handlers,
    ops: OperationRepo,
    private readonly log: Logger,
    limits: Partial<WireLimits> = {},
  ) {
    this.limits = { ...WIRE_LIMITS, ...limits };
    this.dispatch = new Dispatcher(version, handlers, ops, log, this.inflight);
  }

  async listen(): Promise<void> {
    await rm(this.socketPath, { force: true });
    const server = this.makeServer(undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Created with a restrictive umask window closed by the chmod right after.
      server.listen(this.socketPath, () => resolve());
    });
    await chmod(this.socketPath, 0o600);
    this.servers.push(server);
  }

  /** The TCP listener (`api_listen`): every request must carry the bearer token `auth` checks. */
  async listenTcp(host: string, port: number, auth: TokenCheck): Promise<AddressInfo> {
    const server = this.makeServer(auth);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.servers.push(server);
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private makeServer(auth: TokenCheck | undefined): Server {
    // Our own timer bounds the request (node's answers without a frame); a Unix-socket client has no Host to send.
    const server = createServer({ requestTimeout: 0, requireHostHeader: false });
    server.on('connection', (sock: Socket) => {
      const timer = setTimeout(() => this.timedOut(sock), this.limits.requestTimeoutMs);
      timer.unref();
      this.timers.set(sock, timer);
      sock.on('close', () => clearTimeout(timer));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, auth));
    server.on('upgrade', (req: IncomingMessage, sock: Socket, head: Buffer) => this.onUpgrade(req, sock, head, auth));
    server.on('clientError', (err: NodeJS.ErrnoException, sock: Socket) => {
      // Bytes after a request already answered (or being answered) only end the connection.
      if (!sock.writable || sock.bytesWritten > 0) return void sock.destroy();
      const e =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? new Refusal(
              431,
              badRequest('the request headers are too large', 'send small headers; params go in the body'),
            )
          : new Refusal(400, badRequest(`not a well-formed HTTP/1.1 request (${err.code ?? 'parse error'})`, USAGE));
      this.refuse(sock, e);
    });
    return server;
  }

  /** The request was read in full: the request timeout no longer applies. */
  private requestRead(sock: Socket): void {
    clearTimeout(this.timers.get(sock));
    this.onTimeout.delete(sock);
  }

  private timedOut(sock: Socket): void {
    const e = badRequest(
      `no complete request within ${this.limits.requestTimeoutMs / 1000} s`,
      'send the whole request at once: headers and body (a stream: its params line right after the upgrade)',
    );
    const custom = this.onTimeout.get(sock);
    if (custom) return custom(e);
    this.refuse(sock, new Refusal(408, e));
  }

  /** Answers a request that is not let in on a raw socket, and closes it. */
  private refuse(sock: Socket, r: Refusal, opId = newOpId(), lingerMs = 0): void {
    this.log.warn('bad request', { op: opId, error: r.error.message });
    const frame = { error: toWireError(r.error, opId, this.log) };
    rawResponse(sock, r.status, frame, { [HEADER_OP_ID]: opId, ...r.headers }, lingerMs);
  }

  private refuseResponse(res: ServerResponse, r: Refusal): void {
    const opId = newOpId();
    this.log.warn('bad request', { op: opId, error: r.error.message });
    res.writeHead(r.status, { 'content-type': FRAMES_CONTENT_TYPE, [HEADER_OP_ID]: opId, ...r.headers });
    res.end(encodeLine({ error: toWireError(r.error, opId, this.log) }), () => res.socket?.destroy());
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, auth: TokenCheck | undefined): void {
    const sock = req.socket;
    res.setHeader('connection', 'close');
    this.onTimeout.set(sock, (e) => this.refuseResponse(res, new Refusal(408, e)));
    const refused = gate(req, auth);
    if (refused) return this.refuseResponse(res, refused);
    if (req.method === 'GET' && (req.url ?? '').split('?')[0] === OPENAPI_PATH) {
      this.requestRead(sock);
      this.openapi ??= JSON.stringify(openApiDocument(this.version), null, 2);
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(this.openapi);
    }
    const method = methodOf(req);
    if (method instanceof Refusal) return this.refuseResponse(res, method);
    readBody(req, this.limits.maxRequestBytes)
      .then(
        (body) => {
          this.requestRead(sock);
          let started: false | 'lines' | 'binary' = false;
          const reply: Reply = {
            begin: (opId) => res.setHeader(HEADER_OP_ID, opId),
            event: (e) => {
              if (res.destroyed || started === 'binary') return;
              if (!started) res.writeHead(200, { 'content-type': FRAMES_CONTENT_TYPE });
              started = 'lines';
              res.write(encodeLine({ event: e }));
            },
            end: (frame, status, opId) => {
              if (res.destroyed) return;
              if (started === 'binary') {
                // After binary frames an error is one more frame; a result is the end of the body.
                const err = (frame as { error?: unknown }).error;
                return void res.end(err === undefined ? undefined : encodeFrame({ kind: 'error', error: err }));
              }
              if (!started) res.writeHead(status, { 'content-type': FRAMES_CONTENT_TYPE, [HEADER_OP_ID]: opId });
              res.end(encodeLine(frame));
            },
            onGone: (cb) => res.on('close', cb),
            bytes: (b) => {
              if (res.destroyed) return Promise.resolve();
              if (!started) res.writeHead(200, { 'content-type': BINARY_FRAMES_CONTENT_TYPE });
              started = 'binary';
              // Nothing to send yet: the 200 goes out now, so the client knows the stream is open.
              if (b.length === 0) {
                res.flushHeaders();
                return Promise.resolve();
              }
              return writeDrained(res, b);
            },
          };
          const call: Call = {
            method,
            version: header(req, HEADER_VERSION),
            opId: header(req, HEADER_OP_ID),
            params: () => Promise.resolve(body.length === 0 ? undefined : parseLine(body)),
            reply,
          };
          return this.dispatch.handle(call);
        },
        (e: unknown) => {
          // The body is dropped, not read (node:http answers nothing itself: res is left unused).
          req.removeAllListeners('data');
          req.resume();
          const r = e instanceof Refusal ? e : new Refusal(400, badRequest(String(e)));
          this.refuse(sock, r, newOpId(), LINGER_MS);
        },
      )
      .catch((e: unknown) => {
        // handle() answers every error itself; this is a last resort so nothing a client sends can crash the daemon.
        this.log.error('unexpected error (bug) while answering a request', { error: String(e) });
        res.destroy();
      });
  }

  private onUpgrade(req: IncomingMessage, sock: Socket, head: Buffer, auth: TokenCheck | undefined): void {
    sock.on('error', () => undefined);
    // The client's end is its going away, as node:http treats it for other requests (no half-open streams).
    sock.on('end', () => sock.destroy());
    const refused = gate(req, auth);
    if (refused) return this.refuse(sock, refused);
    const method = methodOf(req);
    if (method instanceof Refusal) return this.refuse(sock, method);
    const kind = (header(req, 'upgrade') ?? '').toLowerCase();
    if (kind === PTY_UPGRADE) {
      const call = ptyCall(req, sock, head, method, {
        maxBytes: this.limits.maxRequestBytes,
        requestRead: () => this.requestRead(sock),
        setTimeout: (fn) => this.onTimeout.set(sock, fn),
        refuse: (r) => this.refuse(sock, r, newOpId(), LINGER_MS),
        log: this.log,
      });
      if (call)
        this.dispatch.handle(call).catch((e: unknown) => {
          this.log.error('unexpected error (bug) while answering a request', { error: String(e) });
          sock.destroy();
        });
      return;
    }
    if (kind !== STREAM_UPGRADE)
      return this.refuse(
        sock,
        new Refusal(
          400,
          badRequest(
            `unknown Upgrade ${JSON.stringify(header(req, 'upgrade'))}`,
            `streams upgrade to ${STREAM_UPGRADE}, terminals (proc.pty) to ${PTY_UPGRADE}`,
          ),
        ),
      );
    let upgraded = false;
    const input = new UpgradedInput(sock, this.limits.maxRequestBytes, () => this.requestRead(sock));
    this.onTimeout.set(sock, (e) => {
      const frame = { error: toWireError(e, newOpId(), this.log) };
      // Before the 101 it is an HTTP response; after it the connection carries frames.
      if (upgraded) sock.end(encodeLine(frame), () => sock.destroy());
      else rawResponse(sock, 408, frame);
    });
    const reply: Reply = {
      begin: (opId) => {
        upgraded = true;
        sock.write(
          `HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${STREAM_UPGRADE}\r\n${HEADER_OP_ID}: ${opId}\r\n\r\n`,
        );
        input.start(head);
      },
      event: (e) => {
        if (upgraded && !sock.destroyed) sock.write(encodeLine({ event: e }));
      },
      end: (frame, status, opId) => {
        if (!upgraded) return rawResponse(sock, status, frame, { [HEADER_OP_ID]: opId });
        if (!sock.destroyed) sock.end(encodeLine(frame));
      },
      onGone: (cb) => sock.on('close', cb),
    };
    const call: Call = {
      method,
      version: header(req, HEADER_VERSION),
      opId: header(req, HEADER_OP_ID),
      params: () => input.first(),
      reply,
      stream: { sock, input },
    };
    this.dispatch.handle(call).catch((e: unknown) => {
      this.log.error('unexpected error (bug) while answering a request', { error: String(e) });
      sock.destroy();
    });
  }
}

/** How long a client whose body is refused may go on sending (dropped) while it reads the answer. */
const LINGER_MS = 2000;

/** Writes and resolves once the response can take more (or is gone). */
function writeDrained(res: ServerResponse, b: Buffer): Promise<void> {
  if (res.write(b)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
