import type { Socket } from 'node:net';
import type {
  FramedMethodName,
  Method,
  Params,
  PtyMethodName,
  Result,
  StreamIn,
  StreamMethodName,
  StreamOut,
  UnaryMethodName,
} from '../api/methods.js';
import type { OpContext } from '../services/context.js';
import type { StreamChannel } from './stream.js';

/* The handler types of the daemon's methods, one kind each (api/methods.ts), as daemon/routes/ builds them. */

/** Serves method M: gets its parsed params, returns (or resolves to) its result. */
export type Handler<M extends Method> = (params: Params<M>, ctx: OpContext) => Promise<Result<M>> | Result<M>;

/** Serves a streaming method M; its result ends the stream. */
export type StreamHandler<M extends Method> = (
  params: Params<M>,
  ctx: OpContext,
  channel: StreamChannel<StreamIn<M>, StreamOut<M>>,
) => Promise<Result<M>>;

/** Where a framed method's binary frames go (api/binframes.ts): the first write sends the 200. */
export interface FrameSink {
  /**
   * Writes encoded frames; resolves once the socket can take more (or the client is gone: ctx.signal fired).
   * An empty write sends the 200 (once the handler's checks passed) without a frame.
   */
  write(frames: Buffer): Promise<void>;
}

/** Serves a framed method: writes frames until done; returning ends the response. */
export type FramedHandler<M extends Method> = (params: Params<M>, ctx: OpContext, sink: FrameSink) => Promise<void>;

/** A pty request's connection, not yet switched. */
export interface PtyUpgrade {
  /** Answers 101 (with these headers) and hands over the socket, raw both ways. */
  open(headers: Record<string, string>): Socket;
}

/** Serves a pty method: fails (an HTTP error answer) before `open`, or carries bytes after it; returning closes. */
export type PtyHandler<M extends Method> = (params: Params<M>, ctx: OpContext, up: PtyUpgrade) => Promise<void>;

/** One handler per method, each typed from api/methods.ts. */
export type Handlers = {
  [M in Method]: M extends UnaryMethodName
    ? Handler<M>
    : M extends StreamMethodName
      ? StreamHandler<M>
      : M extends FramedMethodName
        ? FramedHandler<M>
        : M extends PtyMethodName
          ? PtyHandler<M>
          : never;
};

/** The handlers of one method group (`vm`, `image`, …): what a daemon/routes/<group>.ts module builds. */
export type Routes<G extends string> = { [M in Method as M extends `${G}.${string}` ? M : never]: Handlers[M] };
