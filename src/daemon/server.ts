import { randomBytes } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import type { ZodError } from 'zod';
import { isMethod, paramsSchemas, type Method } from '../api/methods.js';
import { encodeLine, LineDecoder, type ProgressEvent, type Request, type WireError } from '../api/protocol.js';
import { AppError, badRequest, noSpaceError } from '../errors.js';
import type { Logger, OpContext } from '../services/context.js';
import type { OperationRepo } from '../store/operations.js';

export type Handler = (params: never, ctx: OpContext) => Promise<unknown> | unknown;
export type Handlers = { [M in Method]: Handler };

/** Methods a daemon of another version still answers, so the CLI can decide to restart it. */
const VERSION_EXEMPT = new Set<string>(['daemon.status', 'daemon.stop']);

export function zodMessage(e: ZodError): string {
  return e.issues
    .map((i) => {
      const where = i.path.length ? i.path.join('.') : 'params';
      if (i.code === 'unrecognized_keys') return `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}`;
      return `${where}: ${i.message}`;
    })
    .join('; ');
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
  ) {}

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
    const decoder = new LineDecoder();
    let started = false;
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      if (started) return;
      let msgs: unknown[];
      try {
        msgs = decoder.push(chunk);
      } catch {
        started = true;
        const id = newOpId();
        sock.end(encodeLine({ error: { code: 'bad_request', message: 'request is not valid JSON', op_id: id } }));
        return;
      }
      const first = msgs[0];
      if (first === undefined) return;
      started = true;
      void this.handle(first, sock);
    });
    sock.on('error', () => undefined);
  }

  private async handle(raw: unknown, sock: Socket): Promise<void> {
    const req = raw as Partial<Request>;
    const opId = typeof req.op_id === 'string' && /^[A-Za-z0-9-]{4,64}$/.test(req.op_id) ? req.op_id : newOpId();
    const method = typeof req.method === 'string' ? req.method : '';
    const abort = new AbortController();
    let finished = false;
    sock.on('close', () => {
      if (!finished) {
        this.log.info('client went away; cancelling', { op: opId, method });
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
    this.log.info('request', { op: opId, method });
    const record = method !== 'daemon.status' && method !== 'vm.list';
    if (record) this.ops.start(opId, method || '(none)');
    this.inflight.set(opId, { method, started: Date.now() });
    try {
      if (!isMethod(method)) {
        throw new AppError('unknown_method', `unknown method "${method}"`, { hint: 'the CLI and daemon may be different versions; run `banger daemon stop` and retry' });
      }
      if (req.version !== this.version && !VERSION_EXEMPT.has(method)) {
        throw new AppError('bad_version', `daemon is version ${this.version}, client is ${String(req.version)}`, {
          hint: 'run `banger daemon stop`; the next command starts the matching daemon',
        });
      }
      const parsed = paramsSchemas[method].safeParse(req.params ?? {});
      if (!parsed.success) throw badRequest(`invalid params for ${method}: ${zodMessage(parsed.error)}`);
      const result = await (this.handlers[method] as (p: unknown, c: OpContext) => unknown)(parsed.data, ctx);
      finished = true;
      if (record) this.ops.finish(opId, 'ok');
      send({ result: result ?? null, op_id: opId });
    } catch (e) {
      finished = true;
      const wire = toWireError(e, opId, this.log);
      const status = wire.code === 'cancelled' ? 'cancelled' : 'error';
      if (record) this.ops.finish(opId, status, wire.message);
      this.log.warn('request failed', { op: opId, method, code: wire.code, error: wire.message });
      send({ error: wire });
    } finally {
      this.inflight.delete(opId);
      sock.end();
    }
  }
}

export function newOpId(): string {
  return `op-${randomBytes(6).toString('hex')}`;
}
