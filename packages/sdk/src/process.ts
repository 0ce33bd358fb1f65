import { Readable } from 'node:stream';
import { BangerError, BangerTimeoutError } from './errors.js';
import { call } from './call.js';
import { FrameDecoder } from './generated/binframes.js';
import type { Transport } from './transport.js';
import type { ExecResult } from './types.js';

/*
 * A handle on a daemon-side guest process: one reader follows both streams from
 * byte offsets into `stdout`/`stderr` and the output kept for `wait()`: the
 * daemon's proc.stream (binary frames, generated/binframes.ts) when the
 * transport has it, else long-polled proc.read. Detaching stops reading and
 * leaves the process running; `Banger.processes.attach(id, {fromOffset})` picks it up again.
 */

interface Status {
  state: 'running' | 'exited';
  exit_code: number | null;
  signal: number | null;
  timed_out: boolean;
  error: string | null;
}

interface Chunk {
  offset: number;
  next: number;
  data: string;
  evicted: boolean;
  lost: number;
}

const POLL_WAIT_MS = 20_000;

/** Which named timeout a process error names (the reaper says "(ttl)" or "(idle_ttl)"). */
export function lifetimeError(error: string): BangerError {
  if (/\(idle_ttl\)/.test(error)) return new BangerTimeoutError('idleTtl', error);
  if (/\(ttl\)/.test(error)) return new BangerTimeoutError('ttl', error);
  return new BangerError('operation_failed', error);
}

export class ProcessHandle {
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Bytes the daemon had already evicted before they were read (attach from an old offset). */
  readonly lost = { stdout: 0, stderr: 0 };
  private readonly out: Buffer[] = [];
  private readonly err: Buffer[] = [];
  private offsets: { stdout: number; stderr: number };
  private detached = false;
  private readonly stop = new AbortController();
  private readonly done: Promise<Status>;

  constructor(
    private readonly t: Transport,
    readonly id: string,
    readonly argv: readonly string[],
    opts: { fromOffset?: number; signal?: AbortSignal | undefined; requestTimeout?: number | undefined },
  ) {
    this.offsets = { stdout: opts.fromOffset ?? 0, stderr: opts.fromOffset ?? 0 };
    this.stdout = new Readable({ read: () => undefined });
    this.stderr = new Readable({ read: () => undefined });
    this.requestTimeout = opts.requestTimeout;
    const onAbort = (): void => {
      if (!this.detached) void this.signal('SIGKILL').catch(() => undefined);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    this.done = (t.frames ? this.follow() : this.poll()).finally(() =>
      opts.signal?.removeEventListener('abort', onAbort),
    );
    this.done.catch(() => undefined);
  }

  private readonly requestTimeout: number | undefined;

  private rpc(method: string, params: unknown, signal?: AbortSignal): Promise<unknown> {
    return call(this.t, method, params, { signal, requestTimeout: this.requestTimeout });
  }

  private take(key: 'stdout' | 'stderr', c: Chunk | undefined): void {
    if (!c) return;
    if (c.evicted) this.lost[key] += c.lost;
    const b = Buffer.from(c.data, 'base64');
    if (b.length > 0) {
      (key === 'stdout' ? this.out : this.err).push(b);
      this[key].push(b);
    }
    this.offsets[key] = c.next;
  }

  /** proc.stream: frames from the offsets until the exit frame. */
  private async follow(): Promise<Status> {
    const frames = this.t.frames;
    try {
      if (!frames) throw new BangerError('bad_request', 'this transport has no frame streams');
      // requestTimeout bounds the daemon's answer, not the stream that follows it.
      const opened = new AbortController();
      const timer =
        this.requestTimeout === undefined ? undefined : setTimeout(() => opened.abort(), this.requestTimeout);
      const body = await frames(
        'proc.stream',
        { id: this.id, stdout_offset: this.offsets.stdout, stderr_offset: this.offsets.stderr },
        { signal: AbortSignal.any([this.stop.signal, opened.signal]) },
      )
        .catch((e: unknown) => {
          if (opened.signal.aborted && !this.stop.signal.aborted)
            throw new BangerTimeoutError(
              'requestTimeout',
              `proc.stream got no answer within ${this.requestTimeout} ms`,
            );
          throw e;
        })
        .finally(() => clearTimeout(timer));
      const dec = new FrameDecoder();
      for await (const chunk of body as AsyncIterable<Buffer>) {
        for (const f of dec.push(chunk)) {
          if (f.kind === 'data') {
            (f.stream === 'stdout' ? this.out : this.err).push(f.data);
            this[f.stream].push(f.data);
            this.offsets[f.stream] = f.offset + f.data.length;
          } else if (f.kind === 'evicted') {
            this.lost[f.stream] += f.lost;
            this.offsets[f.stream] = f.offset;
          } else if (f.kind === 'error') {
            const w = f.error as { code?: string; message?: string; hint?: string };
            throw new BangerError(String(w.code ?? 'operation_failed'), String(w.message ?? 'stream failed'), w.hint);
          } else {
            this.stdout.push(null);
            this.stderr.push(null);
            return f.status as Status;
          }
        }
      }
      if (this.detached) throw new BangerError('cancelled', 'detached');
      throw new BangerError('operation_failed', `the daemon closed the output stream of ${this.id} before its end`);
    } catch (e) {
      this.stdout.push(null);
      this.stderr.push(null);
      if (this.detached)
        return { state: 'running', exit_code: null, signal: null, timed_out: false, error: 'detached' };
      throw e;
    }
  }

  private async poll(): Promise<Status> {
    const wait = Math.min(POLL_WAIT_MS, this.requestTimeout ? Math.floor(this.requestTimeout / 2) : POLL_WAIT_MS);
    try {
      for (;;) {
        const r = (await this.rpc(
          'proc.read',
          { id: this.id, stdout_offset: this.offsets.stdout, stderr_offset: this.offsets.stderr, wait_ms: wait },
          this.stop.signal,
        )) as Status & { stdout?: Chunk; stderr?: Chunk };
        const before = this.offsets.stdout + this.offsets.stderr;
        this.take('stdout', r.stdout);
        this.take('stderr', r.stderr);
        // Ended and nothing more came: all output is in.
        if (r.state === 'exited' && this.offsets.stdout + this.offsets.stderr === before) {
          this.stdout.push(null);
          this.stderr.push(null);
          return r;
        }
      }
    } catch (e) {
      if (this.detached) {
        this.stdout.push(null);
        this.stderr.push(null);
        return { state: 'running', exit_code: null, signal: null, timed_out: false, error: 'detached' };
      }
      // Readers see the streams end; wait() throws the error.
      this.stdout.push(null);
      this.stderr.push(null);
      throw e;
    }
  }

  /** Bytes to the command's stdin (it must have been spawned without `stdin`). */
  async write(data: string | Uint8Array, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const b = Buffer.from(data);
    const STEP = 384 * 1024;
    for (let i = 0; i < b.length || i === 0; i += STEP) {
      await this.rpc('proc.write', { id: this.id, data: b.subarray(i, i + STEP).toString('base64') }, opts.signal);
      if (b.length === 0) break;
    }
  }

  /** Ends the command's stdin. */
  async closeStdin(opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.rpc('proc.write', { id: this.id, eof: true }, opts.signal);
  }

  /** A signal for the command's process group ("SIGTERM", "SIGKILL", …). */
  async signal(sig: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.rpc('proc.signal', { id: this.id, signal: sig }, opts.signal);
  }

  /**
   * Until the command ended: its status and the output this handle read (from its fromOffset).
   * A command the VM's ttl or idleTtl ended throws BangerTimeoutError naming it.
   */
  async wait(opts: { signal?: AbortSignal } = {}): Promise<ExecResult> {
    if (this.detached) throw new BangerError('bad_request', `process ${this.id} was detached; attach to it again`);
    const s = opts.signal
      ? await Promise.race([
          this.done,
          new Promise<never>((_, rej) => {
            if (opts.signal?.aborted) rej(opts.signal.reason);
            opts.signal?.addEventListener('abort', () => rej(opts.signal?.reason), { once: true });
          }),
        ])
      : await this.done;
    if (s.error !== null && s.exit_code === null && s.signal === null) throw lifetimeError(s.error);
    return {
      exitCode: s.exit_code,
      signal: s.signal,
      timedOut: s.timed_out,
      stdout: Buffer.concat(this.out).toString('utf8'),
      stderr: Buffer.concat(this.err).toString('utf8'),
    };
  }

  /** Stops reading and leaves the process running in the VM (an abort no longer kills it). */
  detach(): void {
    this.detached = true;
    this.stop.abort();
  }
}
