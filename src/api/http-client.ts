import { request, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { AppError, ERROR_CODES } from '../errors.js';
import { BINARY_FRAMES_CONTENT_TYPE } from './binframes.js';
import type { Result, StreamIn, StreamMethodName, StreamOut, UnaryMethodName, WireParams } from './methods.js';
import {
  API_PREFIX,
  encodeLine,
  FRAMES_CONTENT_TYPE,
  HEADER_VERSION,
  LineDecoder,
  PTY_UPGRADE,
  STREAM_UPGRADE,
  type ProgressEvent,
  type WireError,
} from './protocol.js';

/*
 * The daemon's HTTP client (api/protocol.ts, docs/http-api.md): no CLI dependencies, so a
 * program (the SDK) uses the same code as the CLI. It neither finds nor starts the daemon;
 * cli/client.ts does that around it.
 */

/** Where the daemon listens: its Unix socket, or the TCP listener (`api_listen`) with its bearer token. */
export type Endpoint = { socketPath: string } | { host: string; port: number; token: string };

/** An error the daemon returned, with its op id kept for display. */
export class RemoteError extends AppError {
  readonly opId: string;
  /** The HTTP status it came with. */
  readonly status: number | undefined;
  constructor(w: WireError, status?: number) {
    super(w.code, w.message, {
      ...(w.hint === undefined ? {} : { hint: w.hint }),
      ...(w.detail === undefined ? {} : { detail: w.detail }),
    });
    this.opId = w.op_id;
    this.status = status;
  }
}

export interface CallOptions {
  onEvent?: (e: ProgressEvent) => void;
  /** Aborting closes the connection, which cancels the operation in the daemon. */
  signal?: AbortSignal;
}

/** A streaming method in progress: frames both ways, then one result. */
export interface StreamCall<In, R> {
  /** Sends a frame; resolves once the socket took it (await it: that is the backpressure). */
  send(frame: In): Promise<void>;
  /** Tells the daemon no more frames come. */
  end(): void;
  /** Closes the connection: the daemon cancels the operation. */
  close(): void;
  /** The result; rejects with the daemon's error (a RemoteError), or when the connection is lost. */
  readonly result: Promise<R>;
}

export interface StreamOptions<Out> {
  /** Each frame of the daemon, in order; while a returned promise is pending, nothing more is read. */
  onFrame: (frame: Out) => void | Promise<void>;
  onEvent?: (e: ProgressEvent) => void;
}

const isWireError = (v: unknown): v is WireError => {
  const w = v as Partial<WireError> | null;
  return (
    typeof w === 'object' &&
    w !== null &&
    (ERROR_CODES as readonly string[]).includes(String(w.code)) &&
    typeof w.message === 'string'
  );
};

/** The frame carried by one line of a response (api/protocol.ts); anything else is a protocol error. */
export type Frame =
  | { kind: 'event'; event: ProgressEvent }
  | { kind: 'frame'; frame: unknown }
  | { kind: 'result'; result: unknown }
  | { kind: 'error'; error: WireError };

export function classifyFrame(v: unknown): Frame {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const r = v as Record<string, unknown>;
    if ('result' in r) return { kind: 'result', result: r.result };
    if ('error' in r && isWireError(r.error))
      return { kind: 'error', error: { ...r.error, op_id: String(r.error.op_id ?? '') } };
    if ('event' in r && typeof r.event === 'object' && r.event !== null)
      return { kind: 'event', event: r.event as ProgressEvent };
    if ('frame' in r) return { kind: 'frame', frame: r.frame };
  }
  throw new AppError(
    'operation_failed',
    `the daemon sent something that is not a frame: ${JSON.stringify(v).slice(0, 120)}`,
    {
      hint: 'the CLI and daemon may be different versions; run `banger daemon stop` and retry',
    },
  );
}

const closedDuring = (method: string, status?: number): AppError =>
  new AppError(
    'operation_failed',
    `the daemon closed the connection during ${method}${status === undefined ? '' : ` (HTTP ${status})`}`,
    { hint: 'see `banger daemon logs`' },
  );

/** Opens `POST /v1/<method>` on the endpoint (no body written yet). */
function open(endpoint: Endpoint, method: string, version: string, headers: Record<string, string>): ClientRequest {
  const target =
    'socketPath' in endpoint
      ? { socketPath: endpoint.socketPath }
      : { host: endpoint.host, port: endpoint.port, headers: { authorization: `Bearer ${endpoint.token}` } };
  return request({
    ...target,
    method: 'POST',
    path: `${API_PREFIX}${encodeURIComponent(method).replace(/%2E/gi, '.')}`,
    agent: false,
    headers: {
      ...('headers' in target ? target.headers : {}),
      accept: FRAMES_CONTENT_TYPE,
      [HEADER_VERSION]: version,
      ...headers,
    },
  });
}

/**
 * Reads a response body of frames in order. `onFrame` may return a promise: the body is
 * paused until it settles. Resolves with the terminal frame, or undefined if the body ended without one.
 */
function readFrames(
  body: IncomingMessage | Socket,
  first: Buffer | undefined,
  onFrame: (f: Frame) => void | Promise<void>,
  done: (f: Frame | Error | undefined) => void,
): void {
  const dec = new LineDecoder();
  let chain = Promise.resolve();
  let over = false;
  const take = (chunk: Buffer): void => {
    let lines: unknown[];
    try {
      lines = dec.push(chunk);
    } catch (e) {
      over = true;
      done(e as Error);
      return;
    }
    if (lines.length === 0) return;
    body.pause();
    chain = chain
      .then(async () => {
        for (const line of lines) {
          if (over) return;
          const f = classifyFrame(line);
          if (f.kind === 'result' || f.kind === 'error') {
            over = true;
            done(f);
            return;
          }
          await onFrame(f);
        }
      })
      .then(
        () => {
          if (!over) body.resume();
        },
        (e: unknown) => {
          over = true;
          done(e instanceof Error ? e : new Error(String(e)));
        },
      );
  };
  if (first && first.length > 0) take(first);
  body.on('data', take);
  body.on('close', () => void chain.then(() => !over && ((over = true), done(undefined))));
  body.on('error', () => undefined);
}

/** Calls a unary method; resolves with its result, rejects with a RemoteError (or the connection's error: ENOENT, ECONNREFUSED…). */
export function callMethod(
  endpoint: Endpoint,
  version: string,
  method: string,
  params: unknown,
  opts: CallOptions = {},
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      fn();
      req.destroy();
    };
    const onAbort = (): void => settle(() => reject(new AppError('cancelled', 'cancelled')));
    const body = JSON.stringify(params ?? {});
    const req = open(endpoint, method, version, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    });
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (e) => settle(() => reject(e)));
    req.on('response', (res) => {
      readFrames(
        res,
        undefined,
        (f) => {
          if (f.kind === 'event') opts.onEvent?.(f.event);
        },
        (f) =>
          settle(() => {
            if (f === undefined) reject(closedDuring(method, res.statusCode));
            else if (f instanceof Error) reject(f);
            else if (f.kind === 'result') resolve(f.result);
            else if (f.kind === 'error') reject(new RemoteError(f.error, res.statusCode));
          }),
      );
    });
    req.end(body);
  });
}

/** A refused request's answer (an error frame line) as the error to throw. */
function refusal(res: IncomingMessage, method: string, reject: (e: unknown) => void): void {
  readFrames(
    res,
    undefined,
    () => undefined,
    (f) => {
      if (f instanceof Error) reject(f);
      else if (f?.kind === 'error') reject(new RemoteError(f.error, res.statusCode));
      else reject(closedDuring(method, res.statusCode));
    },
  );
}

/**
 * Opens a framed method (proc.stream): resolves with the response once it is 200 with binary frames
 * (api/binframes.ts), for the caller to read; a refusal rejects as callMethod does. Aborting `signal`
 * closes the connection (the daemon stops streaming; the process runs on).
 */
export function openFramed(
  endpoint: Endpoint,
  version: string,
  method: string,
  params: unknown,
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(params ?? {});
    const req = open(endpoint, method, version, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      accept: `${BINARY_FRAMES_CONTENT_TYPE}, ${FRAMES_CONTENT_TYPE}`,
    });
    const onAbort = (): void => {
      reject(new AppError('cancelled', 'cancelled'));
      req.destroy();
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', reject);
    req.on('close', () => signal?.removeEventListener('abort', onAbort));
    req.on('response', (res) => {
      if (res.statusCode === 200 && res.headers['content-type'] === BINARY_FRAMES_CONTENT_TYPE) return resolve(res);
      refusal(res, method, reject);
    });
    req.end(body);
  });
}

/**
 * Opens a pty method (proc.pty, `Upgrade: banger-pty`): the params go as the request's JSON body;
 * resolves after the daemon's 101 with the raw socket and the 101's headers; a refusal rejects.
 */
export function openPty(
  endpoint: Endpoint,
  version: string,
  method: string,
  params: unknown,
  signal?: AbortSignal,
): Promise<{ socket: Socket; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(params ?? {});
    const req = open(endpoint, method, version, {
      connection: 'Upgrade',
      upgrade: PTY_UPGRADE,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    });
    let done = false;
    const onAbort = (): void => {
      if (done) return;
      done = true;
      reject(new AppError('cancelled', 'cancelled'));
      req.destroy();
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (e) => !done && ((done = true), reject(e)));
    req.on('response', (res) => {
      done = true;
      signal?.removeEventListener('abort', onAbort);
      refusal(res, method, reject);
    });
    req.on('upgrade', (res, sock, head) => {
      signal?.removeEventListener('abort', onAbort);
      if (done) return void sock.destroy();
      done = true;
      if (head.length > 0) sock.unshift(head);
      resolve({ socket: sock, headers: res.headers });
    });
    req.end(body);
  });
}

/**
 * Opens a streaming method (HTTP Upgrade, api/protocol.ts): its params go as the first line
 * after the daemon's 101, then frames both ways until the result.
 */
export function openStream<In, Out, R>(
  endpoint: Endpoint,
  version: string,
  method: string,
  params: unknown,
  opts: StreamOptions<Out>,
): StreamCall<In, R> {
  let settle!: { resolve: (r: R) => void; reject: (e: unknown) => void };
  let settled = false;
  let sock: Socket | undefined;
  let upgraded!: () => void;
  /** Frames wait for the upgrade (and the params line), in order. */
  const ready = new Promise<void>((resolve) => (upgraded = resolve));
  const result = new Promise<R>((resolve, reject) => (settle = { resolve, reject }));
  result.catch(() => undefined); // a caller may only await it later
  const req = open(endpoint, method, version, { connection: 'Upgrade', upgrade: STREAM_UPGRADE });
  const done = (fn: () => void): void => {
    if (settled) return;
    settled = true;
    fn();
    upgraded();
    sock?.destroy();
    req.destroy();
  };
  const finish = (f: Frame | Error | undefined, status?: number): void =>
    done(() => {
      if (f === undefined) settle.reject(closedDuring(method, status));
      else if (f instanceof Error) settle.reject(f);
      else if (f.kind === 'result') settle.resolve(f.result as R);
      else if (f.kind === 'error') settle.reject(new RemoteError(f.error, status));
    });
  req.on('error', (e) => done(() => settle.reject(e)));
  // Refused before the upgrade (unknown method, other version…): an ordinary response with an error frame.
  req.on('response', (res) =>
    readFrames(
      res,
      undefined,
      () => undefined,
      (f) => finish(f, res.statusCode),
    ),
  );
  req.on('upgrade', (_res, s, head) => {
    sock = s;
    if (settled) return void s.destroy();
    s.write(encodeLine(params ?? {}));
    upgraded();
    readFrames(
      s,
      head,
      async (f) => {
        if (f.kind === 'frame') await opts.onFrame(f.frame as Out);
        else if (f.kind === 'event') opts.onEvent?.(f.event);
      },
      (f) => finish(f),
    );
  });
  req.end();
  const write = async (v: unknown): Promise<void> => {
    await ready;
    return new Promise((resolve) => {
      const s = sock;
      if (settled || !s || s.destroyed || s.write(encodeLine(v))) return resolve();
      const go = (): void => {
        s.off('drain', go);
        s.off('close', go);
        resolve();
      };
      s.on('drain', go);
      s.on('close', go);
    });
  };
  return {
    send: (frame) => write({ frame }),
    end: () => void write({ end: true }),
    close: () => done(() => settle.reject(new AppError('cancelled', 'cancelled'))),
    result,
  };
}

/** A typed client of one daemon endpoint: `call` and `stream` typed from api/methods.ts. */
export class ApiClient {
  constructor(
    readonly endpoint: Endpoint,
    readonly version: string,
  ) {}

  call<M extends UnaryMethodName>(method: M, params: WireParams<M>, opts: CallOptions = {}): Promise<Result<M>> {
    return callMethod(this.endpoint, this.version, method, params, opts) as Promise<Result<M>>;
  }

  stream<M extends StreamMethodName>(
    method: M,
    params: WireParams<M>,
    opts: StreamOptions<StreamOut<M>>,
  ): StreamCall<StreamIn<M>, Result<M>> {
    return openStream(this.endpoint, this.version, method, params, opts);
  }
}
