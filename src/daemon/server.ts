import { randomBytes } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  isMethod,
  methods,
  type AnyMethod,
  type Method,
  type Params,
  type Result,
  type StreamIn,
  type StreamOut,
  type UnaryMethodName,
} from '../api/methods.js';
import { openApiDocument } from '../api/openapi.js';
import {
  encodeLine,
  FRAMES_CONTENT_TYPE,
  HEADER_OP_ID,
  HEADER_VERSION,
  parseLine,
  STREAM_UPGRADE,
  WIRE_LIMITS,
  type ProgressEvent,
} from '../api/protocol.js';
import { AppError, badRequest } from '../errors.js';
import type { Logger, OpContext } from '../services/context.js';
import type { OperationRepo } from '../store/operations.js';
import { gate, methodOf, OPENAPI_PATH, rawResponse, readBody, Refusal, statusOf, type TokenCheck } from './http.js';
import { serveStream, UpgradedInput, type StreamChannel } from './stream.js';
import { opIdUsed, shorten, toWireError, zodMessage } from './wire-error.js';

export type { StreamChannel } from './stream.js';

/** Serves method M: gets its parsed params, returns (or resolves to) its result. */
export type Handler<M extends Method> = (params: Params<M>, ctx: OpContext) => Promise<Result<M>> | Result<M>;

/** Serves a streaming method M; its result ends the stream. */
export type StreamHandler<M extends Method> = (
  params: Params<M>,
  ctx: OpContext,
  channel: StreamChannel<StreamIn<M>, StreamOut<M>>,
) => Promise<Result<M>>;

/** One handler per method, each typed from api/methods.ts. */
export type Handlers = { [M in Method]: M extends UnaryMethodName ? Handler<M> : StreamHandler<M> };

/** The handlers of one method group (`vm`, `image`, …): what a daemon/routes/<group>.ts module builds. */
export type Routes<G extends string> = { [M in Method as M extends `${G}.${string}` ? M : never]: Handlers[M] };

/** Methods a daemon of another version still answers, so the CLI can decide to restart it. */
// Read-only or stopping: a CLI of another version needs these to decide on and perform the swap (SPEC §2).
const VERSION_EXEMPT = new Set<string>(['daemon.status', 'daemon.stop', 'daemon.operations.list']);

type WireLimits = Record<keyof typeof WIRE_LIMITS, number>;

export { shorten, toWireError, zodMessage };

/** How one request's frames go back: an HTTP response (unary) or an upgraded socket (stream). */
interface Reply {
  /** The checks that answer with an HTTP status passed (a stream: the 101 goes out). */
  begin(opId: string): void;
  event(e: ProgressEvent): void;
  /** The terminal frame; `status` is used when no event went out yet (or, for a stream, before its 101). */
  end(frame: unknown, status: number, opId: string): void;
  /** Called once when the client goes away. */
  onGone(cb: () => void): void;
}

/** A request as the method layer sees it, whichever way it came. */
interface Call {
  method: string;
  version: string | undefined;
  opId: string | undefined;
  /** The params: the body (unary), or the first line after the upgrade (stream). */
  params(): Promise<unknown>;
  reply: Reply;
  /** A stream's socket and the lines it sends after its params. */
  stream?: { sock: Socket; input: UpgradedInput };
}

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

  constructor(
    private readonly socketPath: string,
    private readonly version: string,
    private readonly handlers: Handlers,
    private readonly ops: OperationRepo,
    private readonly log: Logger,
    limits: Partial<WireLimits> = {},
  ) {
    this.limits = { ...WIRE_LIMITS, ...limits };
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
          let started = false;
          const reply: Reply = {
            begin: (opId) => res.setHeader(HEADER_OP_ID, opId),
            event: (e) => {
              if (res.destroyed) return;
              if (!started) res.writeHead(200, { 'content-type': FRAMES_CONTENT_TYPE });
              started = true;
              res.write(encodeLine({ event: e }));
            },
            end: (frame, status, opId) => {
              if (res.destroyed) return;
              if (!started) res.writeHead(status, { 'content-type': FRAMES_CONTENT_TYPE, [HEADER_OP_ID]: opId });
              res.end(encodeLine(frame));
            },
            onGone: (cb) => res.on('close', cb),
          };
          const call: Call = {
            method,
            version: header(req, HEADER_VERSION),
            opId: header(req, HEADER_OP_ID),
            params: () => Promise.resolve(body.length === 0 ? undefined : parseLine(body)),
            reply,
          };
          return this.handle(call);
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
    if ((header(req, 'upgrade') ?? '').toLowerCase() !== STREAM_UPGRADE)
      return this.refuse(
        sock,
        new Refusal(
          400,
          badRequest(
            `unknown Upgrade ${JSON.stringify(header(req, 'upgrade'))}`,
            `streams upgrade to ${STREAM_UPGRADE}`,
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
    this.handle(call).catch((e: unknown) => {
      this.log.error('unexpected error (bug) while answering a request', { error: String(e) });
      sock.destroy();
    });
  }

  private async handle(call: Call): Promise<void> {
    const opId = call.opId !== undefined && /^[A-Za-z0-9-]{4,64}$/.test(call.opId) ? call.opId : newOpId();
    const method = call.method;
    const abort = new AbortController();
    let finished = false;
    call.reply.onGone(() => {
      if (!finished) {
        this.log.info('client went away; cancelling', { op: opId, method: shorten(method) });
        abort.abort();
      }
    });
    const ctx: OpContext = {
      opId,
      signal: abort.signal,
      progress: (event: ProgressEvent) => {
        this.log.debug('progress', { op: opId, ...event });
        call.reply.event(event);
      },
    };
    this.log.info('request', { op: opId, method: shorten(method) });
    // An op id a client reuses gets a fresh one for this reply and is refused below.
    const reused = this.inflight.has(opId);
    const replyId = reused ? newOpId() : opId;
    let record = false;
    if (!reused) this.inflight.set(opId, { method, started: Date.now() });
    try {
      if (!isMethod(method)) {
        throw new AppError('unknown_method', `unknown method "${shorten(method)}"`, {
          hint: 'the CLI and daemon may be different versions; run `banger daemon stop` and retry',
        });
      }
      if (reused) throw opIdUsed(opId);
      const def: AnyMethod = methods[method];
      if (def.kind === 'stream' && !call.stream)
        throw badRequest(
          `${method} streams: send it with "Connection: Upgrade" and "Upgrade: ${STREAM_UPGRADE}"`,
          USAGE,
        );
      if (def.kind === 'unary' && call.stream)
        throw badRequest(`${method} does not stream: POST it without an Upgrade header`, USAGE);
      // Only requests for a known method become operations: junk from a client leaves no rows behind.
      if (method !== 'daemon.status' && method !== 'vm.list') {
        try {
          this.ops.start(opId, method);
        } catch (e) {
          throw String(e).includes('UNIQUE') ? opIdUsed(opId) : e;
        }
        record = true;
      }
      if (call.version !== this.version && !VERSION_EXEMPT.has(method)) {
        throw new AppError(
          'bad_version',
          `daemon is version ${this.version}, client is ${shorten(String(call.version))}`,
          { hint: 'run `banger daemon stop`; the next command starts the matching daemon' },
        );
      }
      call.reply.begin(opId);
      const raw = await call.params();
      // A size the schema cannot parse throws its own bad_request, naming the field, from inside safeParse.
      const parsed = def.params.safeParse(raw === undefined ? {} : raw);
      if (!parsed.success) throw badRequest(`invalid params for ${method}: ${zodMessage(parsed.error)}`);
      // The handler's own type (Handlers) matches this method's params; the table lookup by a runtime name loses that.
      const handler = this.handlers[method] as (
        p: unknown,
        c: OpContext,
        ch?: StreamChannel<unknown, unknown>,
      ) => unknown;
      const result =
        def.kind === 'stream' && def.frames && call.stream
          ? await serveStream(call.stream, def.frames, method, abort, zodMessage, (ch) => handler(parsed.data, ctx, ch))
          : await handler(parsed.data, ctx);
      finished = true;
      if (record) this.ops.finish(opId, 'ok');
      call.reply.end({ result: result ?? null, op_id: opId }, 200, opId);
    } catch (e) {
      finished = true;
      const wire = toWireError(e, replyId, this.log);
      const status = wire.code === 'cancelled' ? 'cancelled' : 'error';
      if (record) this.ops.finish(opId, status, wire.message);
      this.log.warn('request failed', { op: replyId, method: shorten(method), code: wire.code, error: wire.message });
      call.reply.end({ error: wire }, statusOf(wire.code), replyId);
    } finally {
      if (!reused) this.inflight.delete(opId);
    }
  }
}

/** How long a client whose body is refused may go on sending (dropped) while it reads the answer. */
const LINGER_MS = 2000;

const USAGE = 'see docs/http-api.md: POST /v1/<method> with the params as a JSON body';

export function newOpId(): string {
  return `op-${randomBytes(6).toString('hex')}`;
}
