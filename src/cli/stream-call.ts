import { createConnection } from 'node:net';
import { encodeLine, LineDecoder, type ProgressEvent, type WireError } from '../api/protocol.js';
import { AppError } from '../errors.js';

/** A streaming method in progress (api/protocol.ts): frames both ways, then one result. */
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

/**
 * Opens a streaming request on the daemon's socket (no auto-start: a unary
 * call before it starts the daemon). `remoteError` turns the daemon's error line into the error thrown.
 */
export function openStream<In, Out, R>(
  socket: string,
  request: { method: string; params: unknown; version: string },
  opts: StreamOptions<Out>,
  remoteError: (w: WireError) => AppError,
): StreamCall<In, R> {
  const sock = createConnection(socket);
  const dec = new LineDecoder();
  let settle!: { resolve: (r: R) => void; reject: (e: unknown) => void };
  let settled = false;
  const result = new Promise<R>((resolve, reject) => (settle = { resolve, reject }));
  result.catch(() => undefined); // a caller may only await it later
  const done = (fn: () => void): void => {
    if (settled) return;
    settled = true;
    fn();
    sock.destroy();
  };
  sock.write(encodeLine(request));
  // Lines are handled one at a time, in order; a frame handler that waits pauses the socket.
  let chain = Promise.resolve();
  sock.on('data', (chunk: Buffer) => {
    let lines: unknown[];
    try {
      lines = dec.push(chunk);
    } catch (e) {
      done(() => settle.reject(e));
      return;
    }
    sock.pause();
    chain = chain
      .then(async () => {
        for (const line of lines as Record<string, unknown>[]) {
          if (settled) return;
          if ('frame' in line) await opts.onFrame(line.frame as Out);
          else if ('event' in line) opts.onEvent?.(line.event as ProgressEvent);
          else if ('result' in line) done(() => settle.resolve(line.result as R));
          else if ('error' in line) done(() => settle.reject(remoteError(line.error as WireError)));
        }
      })
      .then(
        () => {
          if (!settled) sock.resume();
        },
        (e: unknown) => done(() => settle.reject(e)),
      );
  });
  sock.on('error', (e) => done(() => settle.reject(e)));
  sock.on('close', () => {
    // Frames still being handled come first: the result line may be among them.
    void chain.then(() =>
      done(() =>
        settle.reject(
          new AppError('operation_failed', `the daemon closed the connection during ${request.method}`, {
            hint: 'see `banger daemon logs`',
          }),
        ),
      ),
    );
  });
  const write = (v: unknown): Promise<void> =>
    new Promise((resolve) => {
      if (sock.destroyed || settled) return resolve();
      if (sock.write(encodeLine(v))) return resolve();
      const go = (): void => {
        sock.off('drain', go);
        sock.off('close', go);
        resolve();
      };
      sock.on('drain', go);
      sock.on('close', go);
    });
  return {
    send: (frame) => write({ frame }),
    end: () => void write({ end: true }),
    close: () => done(() => settle.reject(new AppError('cancelled', 'cancelled'))),
    result,
  };
}
