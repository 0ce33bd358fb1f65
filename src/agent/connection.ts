import type { Duplex } from 'node:stream';
import { AppError, operationFailed } from '../errors.js';
import { encodeFrame, FrameDecoder } from './codec.js';
import { decodeError } from './payloads.js';
import { AGENT_FRAME_TYPES, FrameType, agentErrorName, frameTypeName, type Frame } from './protocol.js';

/** One open session: gets its frames, and the reason when the connection ends. */
export interface SessionHandler {
  /** What the session waits for, for error messages ("health", "exec sh"). */
  readonly what: string;
  onFrame(frame: Frame): void;
  onClose(err: AppError): void;
}

/** "10 s", "1.5 s", "250 ms". */
export function formatMs(ms: number): string {
  return ms >= 1000 ? `${Number((ms / 1000).toFixed(1))} s` : `${ms} ms`;
}

/** An ERROR frame from the agent as an AppError naming what failed. */
export function agentError(what: string, payload: Buffer): AppError {
  const e = decodeError(payload);
  const detail = `agent error ${agentErrorName(e.code)}${e.errno ? ` (errno ${e.errno})` : ''}`;
  return operationFailed(`${what} failed in the guest: ${e.message}`, { detail });
}

/**
 * The framed byte stream to one guest agent: frame decoding, session ids,
 * dispatch, and failing every open session when the stream breaks. It knows
 * nothing about operations; AgentClient builds them on top.
 */
export class AgentConnection {
  private readonly decoder = new FrameDecoder();
  private readonly sessions = new Map<number, SessionHandler>();
  private nextId = 1;
  private failure: AppError | undefined;
  private helloWaiter: ((f: Frame) => void) | undefined;
  /** When the agent last sent anything (Date.now()). */
  lastHeard = Date.now();
  private resolveClosed!: (err: AppError) => void;
  /** Resolves with the reason once the connection is unusable. */
  readonly closed: Promise<AppError>;

  constructor(
    private readonly stream: Duplex,
    /** Names the agent in messages: "the guest agent", "the guest agent of dev". */
    readonly label: string,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => this.fail(`${label} closed the connection`));
    stream.on('close', () => this.fail(`${label} closed the connection`));
    stream.on('error', (e: Error) => this.fail(`the connection to ${label} failed: ${e.message}`));
    stream.resume(); // a handed-over stream may have been paused (vsock handshake)
  }

  get isOpen(): boolean {
    return this.failure === undefined;
  }

  /** Sessions waiting for frames. */
  get openSessions(): number {
    return this.sessions.size;
  }

  /** Waits for session-0 HELLO (the handshake); anything else there fails the connection. */
  onHello(waiter: ((f: Frame) => void) | undefined): void {
    this.helloWaiter = waiter;
  }

  open(handler: SessionHandler): number {
    if (this.failure) throw this.failure;
    if (this.nextId > 0xffffffff)
      throw operationFailed(`${this.label} connection ran out of session ids`, { hint: 'reconnect' });
    const id = this.nextId++;
    this.sessions.set(id, handler);
    return id;
  }

  /** Forgets a session; late frames for it are dropped. */
  close(id: number): void {
    this.sessions.delete(id);
  }

  /** Writes a frame; resolves once the stream has taken it (backpressure for data). */
  send(type: number, session: number, payload?: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const ok = this.stream.write(encodeFrame(type, session, payload));
    if (ok) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let settled = false;
      const onDrain = (): void => {
        settled = true;
        resolve();
      };
      this.stream.once('drain', onDrain);
      void this.closed.then((err) => {
        if (settled) return;
        this.stream.off('drain', onDrain);
        reject(err);
      });
    });
  }

  /** Sends a control frame whose delivery nobody waits for; a broken stream is reported through the sessions. */
  post(type: number, session: number, payload?: Buffer): void {
    this.send(type, session, payload).catch(() => undefined);
  }

  /** Ends the connection from the host side. */
  destroy(reason = `the connection to ${this.label} was closed`, hint?: string): void {
    this.fail(reason, undefined, hint);
  }

  private onData(chunk: Buffer): void {
    if (this.failure) return;
    this.lastHeard = Date.now();
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      return this.fail(`${this.label} sent a malformed frame`, e);
    }
    for (const f of frames) {
      if (this.failure) return;
      try {
        this.dispatch(f);
      } catch (e) {
        return this.fail(`${this.label} sent a malformed ${frameTypeName(f.type)} frame`, e);
      }
    }
  }

  private dispatch(f: Frame): void {
    if (!AGENT_FRAME_TYPES.has(f.type)) {
      return this.fail(`${this.label} sent frame type ${frameTypeName(f.type)}, which agents never send`);
    }
    if (f.session === 0) {
      if (f.type === FrameType.HELLO && this.helloWaiter) return this.helloWaiter(f);
      if (f.type === FrameType.ERROR) {
        const e = decodeError(f.payload);
        return this.fail(`${this.label} ended the connection: ${e.message} (${agentErrorName(e.code)})`);
      }
      return this.fail(`${this.label} sent an unexpected ${frameTypeName(f.type)} frame on session 0`);
    }
    this.sessions.get(f.session)?.onFrame(f);
  }

  private fail(reason: string, cause?: unknown, hint?: string): void {
    if (this.failure) return;
    const detail = cause instanceof Error ? cause.message : undefined;
    this.failure = operationFailed(detail ? `${reason}: ${detail}` : reason, {
      ...(cause === undefined ? {} : { cause }),
      ...(hint === undefined ? {} : { hint }),
    });
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    this.helloWaiter = undefined;
    this.stream.destroy();
    for (const s of sessions) {
      s.onClose(
        operationFailed(`${this.failure.message} (while waiting for ${s.what})`, {
          cause: this.failure,
          ...(hint === undefined ? {} : { hint }),
        }),
      );
    }
    this.resolveClosed(this.failure);
  }
}
