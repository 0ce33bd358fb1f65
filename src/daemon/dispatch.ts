import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { isMethod, methods, type AnyMethod } from '../api/methods.js';
import { PTY_UPGRADE, STREAM_UPGRADE, type ProgressEvent } from '../api/protocol.js';
import { AppError, badRequest } from '../errors.js';
import type { Logger, OpContext } from '../services/context.js';
import type { OperationRepo } from '../store/operations.js';
import type { FrameSink, Handlers, PtyUpgrade } from './handlers.js';
import { statusOf } from './http.js';
import { serveStream, type StreamChannel, type UpgradedInput } from './stream.js';
import { opIdUsed, shorten, toWireError, zodMessage } from './wire-error.js';

/*
 * The method layer of the daemon's server: a request (whichever way it came, daemon/server.ts)
 * becomes an operation: op id, version check, params validation, its handler, and the one
 * terminal frame or error. The only place where errors become wire errors.
 */

/** Methods a daemon of another version still answers, so the CLI can decide to restart it. */
// Read-only or stopping: a CLI of another version needs these to decide on and perform the swap (SPEC §2).
const VERSION_EXEMPT = new Set<string>(['daemon.status', 'daemon.stop', 'daemon.operations.list']);

export const USAGE = 'see docs/http-api.md: POST /v1/<method> with the params as a JSON body';

/** How one request's frames go back: an HTTP response (unary, framed), an upgraded socket (stream, pty). */
export interface Reply {
  /** The checks that answer with an HTTP status passed (a stream: the 101 goes out). */
  begin(opId: string): void;
  event(e: ProgressEvent): void;
  /** The terminal frame; `status` is used when nothing went out yet (or, for a stream, before its 101). */
  end(frame: unknown, status: number, opId: string): void;
  /** Called once when the client goes away. */
  onGone(cb: () => void): void;
  /** Framed methods (unary requests only): binary frames; the first sends the 200 with their content type. */
  bytes?(b: Buffer): Promise<void>;
}

/** A request as the method layer sees it, whichever way it came. */
export interface Call {
  method: string;
  version: string | undefined;
  opId: string | undefined;
  /** The params: the body (unary, pty), or the first line after the upgrade (stream). */
  params(): Promise<unknown>;
  reply: Reply;
  /** A stream's socket and the lines it sends after its params. */
  stream?: { sock: Socket; input: UpgradedInput };
  /** A pty upgrade, not yet answered. */
  pty?: PtyUpgrade;
}

export function newOpId(): string {
  return `op-${randomBytes(6).toString('hex')}`;
}

export class Dispatcher {
  constructor(
    private readonly version: string,
    private readonly handlers: Handlers,
    private readonly ops: OperationRepo,
    private readonly log: Logger,
    readonly inflight: Map<string, { method: string; started: number }>,
  ) {}

  /** Why a request of this kind cannot call method `def`, if it cannot. */
  private misuse(method: string, def: AnyMethod, call: Call): AppError | undefined {
    const upgrade = call.stream ? STREAM_UPGRADE : call.pty ? PTY_UPGRADE : undefined;
    const want = def.kind === 'stream' ? STREAM_UPGRADE : def.kind === 'pty' ? PTY_UPGRADE : undefined;
    if (upgrade === want) return undefined;
    if (want !== undefined)
      return badRequest(
        `${method} ${def.kind === 'pty' ? 'opens a terminal' : 'streams'}: send it with "Connection: Upgrade" and "Upgrade: ${want}"`,
        USAGE,
      );
    return badRequest(
      `${method} does not ${upgrade === PTY_UPGRADE ? 'open a terminal' : 'stream'}: POST it without an Upgrade header`,
      USAGE,
    );
  }

  async handle(call: Call): Promise<void> {
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
      const misuse = this.misuse(method, def, call);
      if (misuse) throw misuse;
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
      const handler = this.handlers[method] as (p: unknown, c: OpContext, extra?: unknown) => unknown;
      let result: unknown;
      if (def.kind === 'stream' && def.frames && call.stream)
        result = await serveStream(call.stream, def.frames, method, abort, zodMessage, (ch) =>
          handler(parsed.data, ctx, ch as StreamChannel<unknown, unknown>),
        );
      else if (def.kind === 'framed') {
        const reply = call.reply;
        const sink: FrameSink = { write: (b) => (reply.bytes ? reply.bytes(b) : Promise.resolve()) };
        result = await handler(parsed.data, ctx, sink);
      } else if (def.kind === 'pty') result = await handler(parsed.data, ctx, call.pty);
      else result = await handler(parsed.data, ctx);
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
