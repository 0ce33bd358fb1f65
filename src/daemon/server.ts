import { randomBytes } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { z, type ZodError } from 'zod';
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
import {
  encodeLine,
  LineSplitter,
  parseLine,
  WIRE_LIMITS,
  type ProgressEvent,
  type Request,
  type WireError,
} from '../api/protocol.js';
import { AppError, badRequest, noSpaceError } from '../errors.js';
import type { Logger, OpContext } from '../services/context.js';
import type { OperationRepo } from '../store/operations.js';
import { StreamConnection, type StreamChannel } from './stream.js';

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

/** The request envelope (SPEC §2); params are checked per method. Extra fields are ignored. */
const requestSchema = z.object({
  method: z.string(),
  params: z.unknown().optional(),
  op_id: z.string().optional(),
  version: z.string().optional(),
});

const MAX_ECHO = 80;

/** Client-supplied text echoed in messages and logs, cut to a readable length. */
function shorten(text: string): string {
  return text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}… (${text.length} characters)` : text;
}

const MAX_ISSUES = 5;

const opIdUsed = (opId: string): AppError =>
  badRequest(`op id "${opId}" is already used`, 'leave op_id out and the daemon picks a fresh one');

export function zodMessage(e: ZodError, root = 'params'): string {
  const more = e.issues.length > MAX_ISSUES ? `; and ${e.issues.length - MAX_ISSUES} more` : '';
  return (
    e.issues
      .slice(0, MAX_ISSUES)
      .map((i) => {
        const where = i.path.length ? i.path.join('.') : root;
        if (i.code === 'unrecognized_keys') {
          const keys = i.keys.slice(0, MAX_ISSUES).map((k) => `"${shorten(k)}"`);
          if (i.keys.length > MAX_ISSUES) keys.push(`and ${i.keys.length - MAX_ISSUES} more`);
          return `unknown field${i.keys.length > 1 ? 's' : ''} ${keys.join(', ')}`;
        }
        return where ? `${shorten(where)}: ${i.message}` : i.message;
      })
      .join('; ') + more
  );
}

/** Turns anything thrown into the wire error; unknown errors are bugs and say so. */
export function toWireError(e: unknown, opId: string, log: Logger): WireError {
  e = noSpaceError(e) ?? e;
  if (e instanceof AppError) {
    const w: WireError = { code: e.code, message: e.message, op_id: opId };
    if (e.hint !== undefined) w.hint = e.hint;
    if (e.detail !== undefined) w.detail = e.detail;
    return w;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  log.error('unexpected error (bug)', { op: opId, error: err.message, stack: err.stack });
  return {
    code: 'operation_failed',
    message: `internal error: ${err.message}`,
    hint: 'this is a bug in banger; the daemon log (`banger daemon logs`) has the stack trace',
    op_id: opId,
  };
}

/**
 * The Unix-socket server: one request per connection, op ids, validation,
 * progress events, cancellation when the client goes away, and the only place
 * where errors become wire errors.
 */
export class DaemonServer {
  private server: Server | undefined;
  readonly inflight = new Map<string, { method: string; started: number }>();

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

  private readonly limits: WireLimits;

  async listen(): Promise<void> {
    await rm(this.socketPath, { force: true });
    const server = createServer((sock) => this.onConnection(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Created with a restrictive umask window closed by the chmod right after.
      server.listen(this.socketPath, () => resolve());
    });
    await chmod(this.socketPath, 0o600);
    this.server = server;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
    });
  }

  private onConnection(sock: Socket): void {
    const splitter = new LineSplitter(this.limits.maxRequestLineBytes);
    let started = false;
    const timer = setTimeout(() => {
      refuse(
        badRequest(
          `no complete request line within ${this.limits.requestLineTimeoutMs / 1000} s`,
          'send one JSON request followed by a newline',
        ),
      );
    }, this.limits.requestLineTimeoutMs);
    timer.unref();
    /** Answers a request that could not be read, then closes the connection without reading more. */
    const refuse = (e: AppError): void => {
      started = true;
      clearTimeout(timer);
      sock.pause();
      const opId = newOpId();
      this.log.warn('bad request line', { op: opId, error: e.message });
      sock.end(encodeLine({ error: toWireError(e, opId, this.log) }), () => sock.destroy());
    };
    sock.on('data', (chunk: Buffer) => {
      if (started) return;
      let request: unknown;
      let rest: Buffer[] = [];
      try {
        const lines = splitter.push(chunk);
        for (let i = 0; i < lines.length && request === undefined; i++) {
          request = parseLine(lines[i] as Buffer);
          rest = lines.slice(i + 1);
        }
      } catch (e) {
        refuse(e instanceof AppError ? e : badRequest(String(e)));
        return;
      }
      if (request === undefined) return;
      started = true;
      clearTimeout(timer);
      // A streaming method reads on: the lines after the request (already split) and the bytes still to come.
      void this.handle(request, sock, { rest, splitter }).catch((e: unknown) => {
        // handle() answers every error itself; this is a last resort so nothing a client sends can crash the daemon.
        this.log.error('unexpected error (bug) while answering a request', { error: String(e) });
        sock.destroy();
      });
    });
    sock.on('close', () => clearTimeout(timer));
    sock.on('error', () => undefined);
  }

  private async handle(raw: unknown, sock: Socket, input: { rest: Buffer[]; splitter: LineSplitter }): Promise<void> {
    const envelope = requestSchema.safeParse(raw);
    const req: Partial<Request> = envelope.success ? envelope.data : {};
    const opId = typeof req.op_id === 'string' && /^[A-Za-z0-9-]{4,64}$/.test(req.op_id) ? req.op_id : newOpId();
    const method = typeof req.method === 'string' ? req.method : '';
    const abort = new AbortController();
    let finished = false;
    sock.on('close', () => {
      if (!finished) {
        this.log.info('client went away; cancelling', { op: opId, method: shorten(method) });
        abort.abort();
      }
    });
    const send = (v: unknown): void => {
      if (!sock.destroyed) sock.write(encodeLine(v));
    };
    const ctx: OpContext = {
      opId,
      signal: abort.signal,
      progress: (event: ProgressEvent) => {
        this.log.debug('progress', { op: opId, ...event });
        send({ event });
      },
    };
    this.log.info('request', { op: opId, method: shorten(method) });
    // An op id a client reuses gets a fresh one for this reply and is refused below.
    const reused = this.inflight.has(opId);
    const replyId = reused ? newOpId() : opId;
    let record = false;
    if (!reused) this.inflight.set(opId, { method, started: Date.now() });
    try {
      if (!envelope.success)
        throw badRequest(
          `malformed request: ${zodMessage(envelope.error, '')}`,
          'a request is one JSON object {"method", "params", "version", "op_id"?} on one line',
        );
      if (!isMethod(method)) {
        throw new AppError('unknown_method', `unknown method "${shorten(method)}"`, {
          hint: 'the CLI and daemon may be different versions; run `banger daemon stop` and retry',
        });
      }
      if (reused) throw opIdUsed(opId);
      // Only requests for a known method become operations: junk from a client leaves no rows behind.
      if (method !== 'daemon.status' && method !== 'vm.list') {
        try {
          this.ops.start(opId, method);
        } catch (e) {
          throw String(e).includes('UNIQUE') ? opIdUsed(opId) : e;
        }
        record = true;
      }
      if (req.version !== this.version && !VERSION_EXEMPT.has(method)) {
        throw new AppError(
          'bad_version',
          `daemon is version ${this.version}, client is ${shorten(String(req.version))}`,
          {
            hint: 'run `banger daemon stop`; the next command starts the matching daemon',
          },
        );
      }
      const def: AnyMethod = methods[method];
      // A size the schema cannot parse throws its own bad_request, naming the field, from inside safeParse.
      const parsed = def.params.safeParse(req.params === undefined ? {} : req.params);
      if (!parsed.success) throw badRequest(`invalid params for ${method}: ${zodMessage(parsed.error)}`);
      // The handler's own type (Handlers) matches this method's params; the table lookup by a runtime name loses that.
      const handler = this.handlers[method] as (
        p: unknown,
        c: OpContext,
        ch?: StreamChannel<unknown, unknown>,
      ) => unknown;
      const result =
        def.kind === 'stream' && def.frames
          ? await serveStream(sock, input, def.frames, method, abort, (ch) => handler(parsed.data, ctx, ch))
          : await handler(parsed.data, ctx);
      finished = true;
      if (record) this.ops.finish(opId, 'ok');
      send({ result: result ?? null, op_id: opId });
    } catch (e) {
      finished = true;
      const wire = toWireError(e, replyId, this.log);
      const status = wire.code === 'cancelled' ? 'cancelled' : 'error';
      if (record) this.ops.finish(opId, status, wire.message);
      this.log.warn('request failed', { op: replyId, method: shorten(method), code: wire.code, error: wire.message });
      send({ error: wire });
    } finally {
      if (!reused) this.inflight.delete(opId);
      sock.end();
    }
  }
}

/**
 * Runs a streaming method's handler with the connection as its channel. A bad
 * client frame ends the operation at once: the handler is cancelled and the
 * request is answered with the bad frame's error.
 */
async function serveStream(
  sock: Socket,
  input: { rest: Buffer[]; splitter: LineSplitter },
  schema: z.ZodType,
  method: string,
  abort: AbortController,
  run: (ch: StreamChannel<unknown, unknown>) => unknown,
): Promise<unknown> {
  const conn = new StreamConnection<unknown, unknown>(sock, schema, method, zodMessage);
  for (const line of input.rest) conn.pushLine(line);
  sock.on('data', (chunk: Buffer) => {
    let lines: Buffer[];
    try {
      lines = input.splitter.push(chunk);
    } catch (e) {
      conn.fail(e instanceof AppError ? e : badRequest(String(e)));
      return;
    }
    for (const line of lines) conn.pushLine(line);
  });
  const handled = Promise.resolve().then(() => run(conn));
  const bad = conn.badFrame.then((e) => {
    abort.abort();
    throw e;
  });
  handled.catch(() => undefined);
  bad.catch(() => undefined);
  return Promise.race([handled, bad]);
}

export function newOpId(): string {
  return `op-${randomBytes(6).toString('hex')}`;
}
