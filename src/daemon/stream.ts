import type { Socket } from 'node:net';
import type { z, ZodError } from 'zod';
import { encodeLine, LineSplitter, parseLine } from '../api/protocol.js';
import { AppError, badRequest } from '../errors.js';

/*
 * The daemon's side of a streaming method's connection (api/protocol.ts):
 * client frames are parsed, checked against the method's frame schema and
 * queued for the handler, which pulls them; frames it sends wait for the
 * socket's write buffer to drain. Both directions are bounded: the socket is
 * paused while MAX_QUEUED frames wait for the handler, and `send` resolves only
 * once the client has taken what was written.
 */

/** Client frames held for a handler that does not pull them; beyond this the socket stops being read. */
export const MAX_QUEUED_FRAMES = 16;

/**
 * While the socket is not read, a client that goes away would go unnoticed (no read, no EOF): a blank
 * line (skipped by every reader, api/protocol.ts) is written this often, and a gone client fails it.
 */
export const PROBE_MS = 1000;

/** Both directions of a streaming method's connection, as its handler sees them. */
export interface StreamChannel<In, Out> {
  /** Writes a frame; resolves once the socket can take more (await it: that is the backpressure). */
  send(frame: Out): Promise<void>;
  /** The client's frames in order; ends at its `{end: true}` or when it goes away; throws after a bad frame. */
  frames(): AsyncIterable<In>;
}

/** The client's frames of one streaming request, and the writer of ours. */
export class StreamConnection<In, Out> implements StreamChannel<In, Out> {
  private readonly queue: In[] = [];
  private ended = false;
  private failure: AppError | undefined;
  private wake: (() => void) | undefined;
  private iterating = false;
  private readonly failed: Promise<AppError>;
  private onFail!: (e: AppError) => void;
  private probe: NodeJS.Timeout | undefined;

  constructor(
    private readonly sock: Socket,
    private readonly schema: z.ZodType,
    private readonly method: string,
    private readonly zodMessage: (e: ZodError, root: string) => string,
  ) {
    this.failed = new Promise((resolve) => (this.onFail = resolve));
    sock.on('close', () => {
      clearInterval(this.probe);
      this.end();
    });
  }

  /** Resolves with the error once the client sent a frame that is not one (the operation is then answered with it). */
  get badFrame(): Promise<AppError> {
    return this.failed;
  }

  /** One line the client sent after its request. */
  pushLine(line: Buffer): void {
    if (this.failure) return;
    let v: unknown;
    try {
      v = parseLine(line);
    } catch (e) {
      return this.fail(e instanceof AppError ? e : badRequest(String(e)));
    }
    if (v === undefined) return;
    const hint = 'after the request, a stream line is {"frame": …} or {"end": true}';
    if (this.ended) return this.fail(badRequest(`${this.method}: a line after the end of the stream`, hint));
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      return this.fail(badRequest(`${this.method}: a stream line is not an object`, hint));
    const keys = Object.keys(v);
    const rec = v as Record<string, unknown>;
    if (keys.length === 1 && rec.end === true) {
      this.ended = true;
      return this.notify();
    }
    if (keys.length !== 1 || !('frame' in rec))
      return this.fail(badRequest(`${this.method}: a stream line with the fields ${keys.join(', ') || 'none'}`, hint));
    const parsed = this.schema.safeParse(rec.frame);
    if (!parsed.success)
      return this.fail(badRequest(`invalid frame for ${this.method}: ${this.zodMessage(parsed.error, 'frame')}`));
    this.queue.push(parsed.data as In);
    if (this.queue.length >= MAX_QUEUED_FRAMES) this.pauseReading();
    this.notify();
  }

  /** A line the splitter refused (too long): the stream fails with it. */
  fail(e: AppError): void {
    if (this.failure) return;
    this.failure = e;
    this.queue.length = 0;
    clearInterval(this.probe);
    this.sock.pause(); // nothing more is read from a client that sent junk
    this.onFail(e);
    this.notify();
  }

  /** Frames sent as `{frame}` lines; resolves when the socket's buffer drained (or the client is gone). */
  send(frame: Out): Promise<void> {
    const sock = this.sock;
    if (sock.destroyed) return Promise.resolve();
    if (sock.write(encodeLine({ frame }))) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        sock.off('drain', done);
        sock.off('close', done);
        resolve();
      };
      sock.on('drain', done);
      sock.on('close', done);
    });
  }

  frames(): AsyncIterable<In> {
    if (this.iterating) throw new Error('a stream is read once');
    this.iterating = true;
    return { [Symbol.asyncIterator]: () => this.iterator() };
  }

  private async *iterator(): AsyncGenerator<In> {
    for (;;) {
      if (this.failure) throw this.failure;
      const next = this.queue.shift();
      if (next !== undefined) {
        if (this.queue.length < MAX_QUEUED_FRAMES / 2 && this.probe) this.resumeReading();
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private pauseReading(): void {
    this.sock.pause();
    this.probe ??= setInterval(() => {
      if (!this.sock.destroyed) this.sock.write('\n');
    }, PROBE_MS);
  }

  private resumeReading(): void {
    clearInterval(this.probe);
    this.probe = undefined;
    if (!this.sock.destroyed) this.sock.resume();
  }

  private end(): void {
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/**
 * The lines an upgraded connection sends: the first is the params, the rest go to the
 * stream (StreamConnection). Nothing more is read between the two.
 */
export class UpgradedInput {
  private readonly splitter: LineSplitter;
  private readonly held: Buffer[] = [];
  private sink: StreamConnection<unknown, unknown> | undefined;
  private firstLine: { resolve: (v: unknown) => void; reject: (e: unknown) => void } | undefined;
  private readonly firstValue: Promise<unknown>;
  private gotFirst = false;

  constructor(
    private readonly sock: Socket,
    maxBytes: number,
    private readonly onFirst: () => void,
  ) {
    this.splitter = new LineSplitter(maxBytes);
    this.firstValue = new Promise((resolve, reject) => (this.firstLine = { resolve, reject }));
    this.firstValue.catch(() => undefined);
  }

  /** Starts reading, after the 101 (`head`: bytes node:http read past the request headers). */
  start(head: Buffer): void {
    this.sock.on('data', (c: Buffer) => this.push(c));
    this.sock.on('close', () => this.firstLine?.reject(new AppError('cancelled', 'the client went away')));
    if (head.length > 0) this.push(head);
  }

  first(): Promise<unknown> {
    return this.firstValue;
  }

  attach(conn: StreamConnection<unknown, unknown>): void {
    this.sink = conn;
    for (const line of this.held.splice(0)) conn.pushLine(line);
    this.sock.resume();
  }

  private push(chunk: Buffer): void {
    let lines: Buffer[];
    try {
      lines = this.splitter.push(chunk);
    } catch (e) {
      const err = e instanceof AppError ? e : badRequest(String(e));
      if (!this.gotFirst) this.firstLine?.reject(err);
      this.sink?.fail(err);
      this.sock.pause();
      return;
    }
    for (const line of lines) {
      if (this.sink) this.sink.pushLine(line);
      else if (this.gotFirst) this.held.push(line);
      else this.takeFirst(line);
    }
  }

  private takeFirst(line: Buffer): void {
    let v: unknown;
    try {
      v = parseLine(line);
    } catch (e) {
      this.gotFirst = true;
      this.sock.pause();
      return this.firstLine?.reject(e);
    }
    if (v === undefined) return; // blank lines are skipped
    this.gotFirst = true;
    this.onFirst();
    // The stream reads on once its handler is attached.
    this.sock.pause();
    this.firstLine?.resolve(v);
  }
}

/**
 * Runs a streaming method's handler with the upgraded connection as its channel. A bad
 * client frame ends the operation at once: the handler is cancelled and the
 * request is answered with the bad frame's error.
 */
export async function serveStream(
  stream: { sock: Socket; input: UpgradedInput },
  schema: z.ZodType,
  method: string,
  abort: AbortController,
  zodMessage: (e: ZodError, root: string) => string,
  run: (ch: StreamChannel<unknown, unknown>) => unknown,
): Promise<unknown> {
  const conn = new StreamConnection<unknown, unknown>(stream.sock, schema, method, zodMessage);
  stream.input.attach(conn);
  const handled = Promise.resolve().then(() => run(conn));
  const bad = conn.badFrame.then((e) => {
    abort.abort();
    throw e;
  });
  handled.catch(() => undefined);
  bad.catch(() => undefined);
  return Promise.race([handled, bad]);
}
