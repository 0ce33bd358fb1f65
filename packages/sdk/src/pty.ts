import type { Duplex } from 'node:stream';
import { call } from './call.js';
import { BangerError } from './errors.js';
import type { Transport } from './transport.js';

/*
 * A command on a terminal in the guest (proc.pty): `stream` carries raw terminal bytes both
 * ways (write keystrokes, read the screen's bytes); the window size goes by `resize` and the exit
 * status by `wait` (unary calls beside the stream). Closing `stream` detaches: the command runs
 * on, and `Banger.processes.attachPty(id, {fromOffset})` reaches it again.
 */

export interface PtyStatus {
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
}

interface Status {
  state: 'running' | 'exited';
  exit_code: number | null;
  signal: number | null;
  timed_out: boolean;
  error: string | null;
}

/** One proc.wait asks at most this long (the daemon's limit is a minute). */
const WAIT_STEP_MS = 50_000;

export class PtySession {
  constructor(
    private readonly t: Transport,
    /** The daemon-side process id (proc.* calls, attachPty). */
    readonly id: string,
    /** The terminal: raw bytes to the command's terminal, and its output. Ends when the command ended. */
    readonly stream: Duplex,
    private readonly requestTimeout: number | undefined,
  ) {}

  /** Opens proc.pty with `params` on the transport. */
  static async open(
    t: Transport,
    params: Record<string, unknown>,
    opts: { signal?: AbortSignal | undefined; requestTimeout?: number | undefined },
  ): Promise<PtySession> {
    if (!t.pty)
      throw new BangerError('bad_request', 'this transport cannot open terminals', 'use the default transport');
    const r = await t.pty('proc.pty', params, { signal: opts.signal });
    return new PtySession(t, r.procId, r.socket, opts.requestTimeout);
  }

  private rpc(method: string, params: unknown, signal?: AbortSignal): Promise<unknown> {
    return call(this.t, method, params, { signal, requestTimeout: this.requestTimeout });
  }

  /** The terminal's new window size. */
  async resize(cols: number, rows: number, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.rpc('proc.resize', { id: this.id, cols, rows }, opts.signal);
  }

  /** A signal for the command's process group. */
  async signal(sig: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.rpc('proc.signal', { id: this.id, signal: sig }, opts.signal);
  }

  /** Until the command ended: how. A command that ended without a status (the VM stopped) throws. */
  async wait(opts: { signal?: AbortSignal } = {}): Promise<PtyStatus> {
    for (;;) {
      const s = (await this.rpc('proc.wait', { id: this.id, wait_ms: WAIT_STEP_MS }, opts.signal)) as Status;
      if (s.state !== 'exited') continue;
      if (s.error !== null && s.exit_code === null && s.signal === null)
        throw new BangerError('operation_failed', s.error);
      return { exitCode: s.exit_code, signal: s.signal, timedOut: s.timed_out };
    }
  }

  /** Stops carrying bytes; the command runs on. */
  detach(): void {
    this.stream.destroy();
  }
}
