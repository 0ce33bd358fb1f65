import { constants } from 'node:os';
import { Readable, Writable } from 'node:stream';
import { badRequest, operationFailed, type AppError } from '../errors.js';
import { agentError, formatMs, type AgentConnection, type SessionHandler } from './connection.js';
import {
  decodeExit,
  decodeU32,
  encodeExec,
  encodeResize,
  encodeU32,
  type ExecSpec,
  type ExitStatus,
} from './payloads.js';
import { DATA_CHUNK, FrameType, WINDOW_INITIAL, frameTypeName, type Frame } from './protocol.js';

export interface ExecOptions extends ExecSpec {
  /**
   * What the command reads: bytes or a stream (then end of input), 'pipe' for
   * the `stdin` writable of the handle, or nothing (end of input at once).
   */
  stdin?: Buffer | string | Readable | 'pipe';
}

/** A command running in the guest. */
export interface AgentExec {
  /** With a PTY: everything the terminal printed. */
  readonly stdout: Readable;
  /** Empty with a PTY. Read both streams: they share one flow-control window. */
  readonly stderr: Readable;
  /** Only with `stdin: 'pipe'`. */
  readonly stdin: Writable | null;
  /** The guest pid, once the command started; rejects when it could not start. */
  readonly started: Promise<number>;
  /** Resolves when the command has ended and stdout/stderr have ended. */
  readonly exit: Promise<ExitStatus>;
  /** Sends a signal to the command's process group. */
  kill(signal?: NodeJS.Signals | number): void;
  /** Changes the PTY's window size (the command gets SIGWINCH). */
  resize(rows: number, cols: number): void;
  /** SIGKILL to the process group; its further output is dropped. */
  abort(): void;
}

export function signalNumber(signal: NodeJS.Signals | number): number {
  const n = typeof signal === 'number' ? signal : (constants.signals as Record<string, number | undefined>)[signal];
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > 64)
    throw badRequest(`signal ${String(signal)} is not a signal`);
  return n;
}

const signalNames = new Map(Object.entries(constants.signals).map(([name, n]) => [n as number, name]));

/** "SIGTERM" for 15 (the guest is Linux, as is the host). */
export function signalName(n: number): string {
  return signalNames.get(n) ?? `signal ${n}`;
}

/** Host side of one EXEC session: streams, credit in both directions, exit. */
class ExecSession implements AgentExec, SessionHandler {
  readonly what: string;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly stdin: Writable | null = null;
  readonly started: Promise<number>;
  readonly exit: Promise<ExitStatus>;
  private id = 0;
  private running = false;
  private ended = false;
  private startTimer: NodeJS.Timeout | undefined;
  private resolveStarted!: (pid: number) => void;
  private rejectStarted!: (e: AppError) => void;
  private resolveExit!: (s: ExitStatus) => void;
  private rejectExit!: (e: AppError) => void;
  /** Output bytes received, and credit given back for them. */
  private received = 0;
  private granted = 0;
  /** What we may still send as STDIN, and writers waiting for more. */
  private stdinCredit = WINDOW_INITIAL;
  private creditWaiters: (() => void)[] = [];

  constructor(
    private readonly conn: AgentConnection,
    opts: ExecOptions,
    timeoutMs: number,
  ) {
    const payload = encodeExec(opts); // bad input throws before anything is sent
    this.what = `exec ${opts.argv[0]}`;
    this.started = new Promise((res, rej) => {
      this.resolveStarted = res;
      this.rejectStarted = rej;
    });
    this.started.catch(() => undefined); // callers may only await exit
    this.exit = new Promise((res, rej) => {
      this.resolveExit = res;
      this.rejectExit = rej;
    });
    this.stdout = new Readable({ read: () => this.onRead(this.stdout) });
    this.stderr = new Readable({ read: () => this.onRead(this.stderr) });
    if (opts.stdin === 'pipe') {
      this.stdin = new Writable({
        write: (chunk: Buffer, _enc, cb) => this.sendStdin(chunk).then(() => cb(), cb),
        final: (cb) => {
          this.endStdin();
          cb();
        },
      });
    }
    try {
      this.id = conn.open(this);
    } catch (e) {
      this.fail(e as AppError); // a closed connection: the promises say so, like every other call
      return;
    }
    // Armed before sending: an answer may arrive before post() returns.
    this.startTimer = setTimeout(() => {
      this.fail(operationFailed(`${conn.label} did not answer ${this.what} within ${formatMs(timeoutMs)}`));
      conn.post(FrameType.ABORT, this.id);
    }, timeoutMs);
    conn.post(FrameType.EXEC, this.id, payload);
    this.feed(opts.stdin);
  }

  private feed(stdin: ExecOptions['stdin']): void {
    if (stdin === 'pipe') return;
    if (stdin === undefined) return this.endStdin();
    if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) {
      const data = Buffer.from(stdin);
      void this.sendStdin(data).then(
        () => this.endStdin(),
        () => undefined,
      );
      return;
    }
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => this.sendStdin(Buffer.from(chunk)).then(() => cb(), cb),
      final: (cb) => {
        this.endStdin();
        cb();
      },
    });
    stdin.pipe(sink);
    sink.on('error', () => stdin.unpipe(sink));
  }

  /** Sends data as STDIN frames within the agent's credit. */
  private async sendStdin(data: Buffer): Promise<void> {
    let off = 0;
    while (off < data.length) {
      if (this.ended) return; // the command is gone: its input goes nowhere
      if (this.stdinCredit === 0) {
        await new Promise<void>((resolve) => this.creditWaiters.push(resolve));
        continue;
      }
      const n = Math.min(data.length - off, DATA_CHUNK, this.stdinCredit);
      this.stdinCredit -= n;
      await this.conn.send(FrameType.STDIN, this.id, data.subarray(off, off + n));
      off += n;
    }
  }

  private endStdin(): void {
    if (!this.ended) this.conn.post(FrameType.STDIN, this.id);
  }

  /**
   * A reader wants more. Node calls _read before it takes the chunk being read
   * out of the buffer, and not again until the next push: the empty push
   * re-arms it, so consumption keeps turning into credit.
   */
  private onRead(stream: Readable): void {
    this.grant();
    if (!this.ended) stream.push(Buffer.alloc(0));
  }

  /** Gives the agent back credit for the output our readers consumed (or dropped). */
  private grant(): void {
    if (this.ended) return;
    const held = (r: Readable): number => (r.destroyed ? 0 : r.readableLength);
    const consumed = this.received - held(this.stdout) - held(this.stderr);
    const delta = consumed - this.granted;
    if (delta <= 0) return;
    this.granted += delta;
    this.conn.post(FrameType.WINDOW, this.id, encodeU32(delta));
  }

  private output(stream: Readable, data: Buffer): void {
    if (!this.running) throw operationFailed('output before EXEC_STARTED');
    if (this.received + data.length - this.granted > WINDOW_INITIAL)
      throw operationFailed('output beyond the flow-control window');
    this.received += data.length;
    if (stream.destroyed) return this.grant(); // nobody reads it any more
    stream.push(data);
  }

  onFrame(f: Frame): void {
    switch (f.type) {
      case FrameType.EXEC_STARTED: {
        if (this.running) throw operationFailed('a second EXEC_STARTED');
        const pid = decodeU32(f.payload, 'EXEC_STARTED');
        clearTimeout(this.startTimer);
        this.running = true;
        this.resolveStarted(pid);
        return;
      }
      case FrameType.STDOUT:
        return this.output(this.stdout, f.payload);
      case FrameType.STDERR:
        return this.output(this.stderr, f.payload);
      case FrameType.WINDOW: {
        const inc = decodeU32(f.payload, 'WINDOW');
        if (inc === 0 || this.stdinCredit + inc > WINDOW_INITIAL)
          throw operationFailed(`WINDOW of ${inc} is more than was sent`);
        this.stdinCredit += inc;
        this.wakeWriters();
        return;
      }
      case FrameType.EXIT: {
        if (!this.running) throw operationFailed('EXIT before EXEC_STARTED');
        const status = decodeExit(f.payload);
        this.finish();
        this.stdout.push(null);
        this.stderr.push(null);
        this.resolveExit(status);
        return;
      }
      case FrameType.ERROR:
        return this.fail(agentError(this.what, f.payload));
      default:
        throw operationFailed(`frame type ${frameTypeName(f.type)} on an exec session`);
    }
  }

  onClose(err: AppError): void {
    this.fail(err);
  }

  private finish(): void {
    this.ended = true;
    this.running = false;
    clearTimeout(this.startTimer);
    this.conn.close(this.id);
    this.wakeWriters();
  }

  private wakeWriters(): void {
    const waiters = this.creditWaiters;
    this.creditWaiters = [];
    for (const w of waiters) w();
  }

  private fail(err: AppError): void {
    if (this.ended) return;
    this.finish();
    this.rejectStarted(err);
    this.rejectExit(err);
    // The error is the exit promise's; readers of the streams see them close early.
    this.stdout.destroy();
    this.stderr.destroy();
    this.stdin?.destroy();
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): void {
    const n = signalNumber(signal);
    if (!this.ended) this.conn.post(FrameType.SIGNAL, this.id, encodeU32(n));
  }

  resize(rows: number, cols: number): void {
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || rows > 0xffff || cols > 0xffff) {
      throw badRequest(`window size ${rows}x${cols} is not within 1..65535`);
    }
    if (!this.ended) this.conn.post(FrameType.RESIZE, this.id, encodeResize(rows, cols));
  }

  abort(): void {
    if (this.ended) return;
    this.conn.post(FrameType.ABORT, this.id);
    // The agent still sends EXIT (killed by SIGKILL); output until then is dropped.
    this.stdout.resume();
    this.stderr.resume();
  }
}

export function startExec(conn: AgentConnection, opts: ExecOptions, timeoutMs: number): AgentExec {
  return new ExecSession(conn, opts, timeoutMs);
}
