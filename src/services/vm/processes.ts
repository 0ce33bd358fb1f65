import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import type { AgentClient } from '../../agent/client.js';
import { signalNumber, type AgentExec } from '../../agent/exec.js';
import type { ExecSpec } from '../../agent/payloads.js';
import type { Params } from '../../api/methods.js';
import type { ProcChunk, ProcExecResult, ProcRead, ProcStatus, ProcView } from '../../api/proc-contract.js';
import { AppError, badRequest, cancelled, notFound, precondition } from '../../errors.js';
import type { ImageRepo } from '../../store/images.js';
import type { VmRepo, VmRow } from '../../store/vms.js';
import type { Logger, OpContext } from '../context.js';
import { readRuntimeConfig, type ImageRuntimeConfig } from '../image/oci-config.js';
import type { VmAgents } from './agent.js';
import { execResult, guestText, planExec } from './exec.js';
import { checkAgentVm } from './guestops.js';
import { resolveRef } from './names.js';
import { DEFAULT_BUFFER_BYTES, OutputBuffer } from './procbuffer.js';

/*
 * Daemon-side guest processes (proc.*): the daemon runs a command in a VM
 * through its guest agent and keeps it, its status and a bounded buffer of
 * each output stream, so clients read from byte offsets, detach and attach
 * again. A timeout kills the command's process group; so does a one-shot
 * proc.exec whose client goes away.
 */

/** Processes one VM may run at once. */
export const MAX_RUNNING_PER_VM = 64;
/** Ended processes kept for reading (the oldest go first). */
export const MAX_EXITED_KEPT = 64;

export interface VmProcessesDeps {
  vms: Pick<VmRepo, 'byName' | 'get' | 'list' | 'touch'>;
  images: Pick<ImageRepo, 'get'>;
  agents: Pick<VmAgents, 'use'>;
  log: Logger;
  bufferBytes?: number;
}

type StartParams = Params<'proc.start'>;

/** One guest process and what the daemon keeps of it. */
export class GuestProcess {
  state: 'running' | 'exited' = 'running';
  exitCode: number | null = null;
  signal: number | null = null;
  timedOut = false;
  error: string | null = null;
  endedAt: Date | null = null;
  readonly startedAt = new Date();
  readonly stdout: OutputBuffer;
  readonly stderr: OutputBuffer;
  exec: AgentExec | undefined;
  /** Started on a terminal (proc.pty): its output is all in stdout, and it can be resized. */
  tty = false;
  stdin: Writable | null = null;
  private waiters: (() => void)[] = [];
  readonly ended: Promise<void>;
  private onEnd!: () => void;

  constructor(
    readonly id: string,
    readonly vm: { id: string; name: string },
    readonly argv: string[],
    bufferBytes: number,
  ) {
    this.stdout = new OutputBuffer(bufferBytes);
    this.stderr = new OutputBuffer(bufferBytes);
    this.ended = new Promise((resolve) => (this.onEnd = resolve));
  }

  output(stream: 'stdout' | 'stderr', data: Buffer): void {
    this[stream].write(data);
    this.notify();
  }

  end(s: { exitCode?: number | null; signal?: number | null; error?: string }): void {
    if (this.state === 'exited') return;
    this.state = 'exited';
    this.exitCode = s.exitCode ?? null;
    this.signal = s.signal ?? null;
    this.error = s.error ?? null;
    this.endedAt = new Date();
    this.stdin?.destroy();
    this.onEnd();
    this.notify();
  }

  /** Resolves at the next output or the end, after ms, or when the signal fires. */
  changed(ms: number, signal: AbortSignal): Promise<void> {
    if (this.state === 'exited' || ms <= 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.waiters.push(done);
    });
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  status(): ProcStatus {
    return {
      id: this.id,
      state: this.state,
      exit_code: this.exitCode,
      signal: this.signal,
      timed_out: this.timedOut,
      error: this.error,
    };
  }

  view(): ProcView {
    return {
      ...this.status(),
      vm: this.vm.name,
      argv: this.argv,
      started_at: this.startedAt.toISOString(),
      ended_at: this.endedAt?.toISOString() ?? null,
      stdout_bytes: this.stdout.total,
      stderr_bytes: this.stderr.total,
    };
  }
}

function chunk(b: OutputBuffer, from: number | undefined, max: number): ProcChunk {
  const r = b.read(from ?? -1, max);
  return { offset: r.offset, next: r.next, data: r.data.toString('base64'), evicted: r.evicted, lost: r.lost };
}

export class VmProcesses {
  private readonly procs = new Map<string, GuestProcess>();
  /** Last proc.* use per VM id (ms), for the reaper's idle_ttl. */
  private readonly activity = new Map<string, number>();

  constructor(private readonly d: VmProcessesDeps) {}

  /** The last time a process of the VM ran or was used (undefined: never since the daemon started). */
  lastActivity(vmId: string): number | undefined {
    return this.running(vmId) > 0 ? Date.now() : this.activity.get(vmId);
  }

  running(vmId: string): number {
    let n = 0;
    for (const p of this.procs.values()) if (p.vm.id === vmId && p.state === 'running') n++;
    return n;
  }

  private touch(vmId: string): void {
    this.activity.set(vmId, Date.now());
  }

  get(id: string): GuestProcess {
    const p = this.procs.get(id);
    if (!p)
      throw notFound(
        `no process ${id}`,
        'it ended long ago and was dropped, or the daemon restarted; `proc.list` shows what is kept',
      );
    this.touch(p.vm.id);
    return p;
  }

  list(ref?: string): ProcView[] {
    const vmId = ref === undefined ? undefined : resolveRef(this.d.vms, ref).id;
    return [...this.procs.values()].filter((p) => vmId === undefined || p.vm.id === vmId).map((p) => p.view());
  }

  /**
   * proc.start: resolves once the command runs in the guest (its failure to start is this call's error).
   * With `tty` (proc.pty) it runs on a terminal of that size, its stdin open.
   */
  async start(p: StartParams, ctx: OpContext, tty?: { rows: number; cols: number }): Promise<GuestProcess> {
    const vm = resolveRef(this.d.vms, p.ref);
    const image = this.d.images.get(vm.imageId);
    checkAgentVm(vm, image, 'running a process');
    if (this.running(vm.id) >= MAX_RUNNING_PER_VM)
      throw precondition(`VM "${vm.name}" already runs ${MAX_RUNNING_PER_VM} processes`, 'wait for some to end');
    const cfg = image ? await readRuntimeConfig(image.dir) : undefined;
    if (ctx.signal.aborted) throw cancelled();
    const proc = new GuestProcess(
      `p-${randomBytes(6).toString('hex')}`,
      vm,
      p.argv,
      this.d.bufferBytes ?? DEFAULT_BUFFER_BYTES,
    );
    proc.tty = tty !== undefined;
    this.d.vms.touch(vm.id);
    this.touch(vm.id);
    let started!: (e?: unknown) => void;
    const ready = new Promise<void>((resolve, reject) => (started = (e) => (e === undefined ? resolve() : reject(e))));
    // As in vm.exec, this command's failure is a value: `use` would drop the connection every other session shares.
    void this.d.agents
      .use(vm, async (c) => {
        try {
          await this.run(c, vm, proc, p, cfg, started, tty);
          return undefined;
        } catch (e) {
          if (!c.isOpen) throw e;
          return e;
        }
      })
      .then(
        (e) => e,
        (e: unknown) => e,
      )
      .then((e) => {
        if (e === undefined) return;
        started(e);
        proc.end({ error: e instanceof Error ? e.message : String(e) });
      });
    await ready;
    this.procs.set(proc.id, proc);
    if (ctx.signal.aborted) {
      // The client went away before it learned the id: nobody could ever stop this command.
      proc.exec?.abort();
      throw cancelled();
    }
    this.trim();
    return proc;
  }

  private async run(
    c: AgentClient,
    vm: VmRow,
    proc: GuestProcess,
    p: StartParams,
    cfg: ImageRuntimeConfig | undefined,
    started: (e?: unknown) => void,
    tty: { rows: number; cols: number } | undefined,
  ): Promise<void> {
    const user = p.user ?? cfg?.user ?? '';
    const passwd = await guestText(c, '/etc/passwd');
    const group = /:\D/.test(user) ? await guestText(c, '/etc/group') : '';
    const plan = planExec(
      {
        ref: p.ref,
        argv: p.argv,
        tty: tty !== undefined,
        ...(tty ? { rows: tty.rows, cols: tty.cols } : {}),
        ...(p.env ? { env: p.env } : {}),
        ...(p.cwd !== undefined ? { cwd: p.cwd } : {}),
        ...(p.user !== undefined ? { user: p.user } : {}),
      },
      cfg,
      passwd,
      group,
    );
    const stdin = p.stdin !== undefined ? Buffer.from(p.stdin, 'base64') : p.open_stdin || tty ? 'pipe' : undefined;
    const launch = (spec: ExecSpec): AgentExec => {
      const x = c.exec({ ...spec, ...(stdin === undefined ? {} : { stdin }) });
      x.exit.catch(() => undefined);
      return x;
    };
    let x = launch(plan.spec);
    try {
      await x.started;
    } catch (e) {
      if (!plan.cwdIsHome || !(e instanceof AppError) || !/: chdir /.test(e.message)) throw e;
      x = launch({ ...plan.spec, cwd: '' });
      await x.started;
    }
    proc.exec = x;
    proc.stdin = x.stdin;
    proc.stdin?.on('error', () => undefined);
    const timer =
      p.timeout_ms === undefined
        ? undefined
        : setTimeout(() => {
            proc.timedOut = true;
            this.d.log.info('process timed out; killing its process group', { id: proc.id, vm: vm.name });
            x.abort();
          }, p.timeout_ms);
    started();
    const pump = async (key: 'stdout' | 'stderr'): Promise<void> => {
      try {
        for await (const b of x[key] as AsyncIterable<Buffer>) proc.output(key, b);
      } catch {
        // The stream failed with the command: exit says why.
      }
    };
    try {
      const [status] = await Promise.all([x.exit, pump('stdout'), pump('stderr')]);
      const r = execResult(status);
      proc.end({ exitCode: r.exit_code, signal: r.signal });
    } finally {
      clearTimeout(timer);
      this.touch(vm.id);
    }
  }

  /** Keeps at most MAX_EXITED_KEPT ended processes. */
  private trim(): void {
    const exited = [...this.procs.values()].filter((p) => p.state === 'exited');
    for (const p of exited.slice(0, Math.max(0, exited.length - MAX_EXITED_KEPT))) this.procs.delete(p.id);
  }

  async read(p: Params<'proc.read'>, ctx: OpContext): Promise<ProcRead> {
    const proc = this.get(p.id);
    const streams = p.streams ?? ['stdout', 'stderr'];
    const max = p.max_bytes ?? 1024 * 1024;
    const fresh = (): boolean =>
      (streams.includes('stdout') && proc.stdout.total > (p.stdout_offset ?? -1)) ||
      (streams.includes('stderr') && proc.stderr.total > (p.stderr_offset ?? -1));
    const deadline = Date.now() + (p.wait_ms ?? 0);
    while (!fresh() && proc.state === 'running' && Date.now() < deadline && !ctx.signal.aborted)
      await proc.changed(deadline - Date.now(), ctx.signal);
    return {
      ...proc.status(),
      ...(streams.includes('stdout') ? { stdout: chunk(proc.stdout, p.stdout_offset, max) } : {}),
      ...(streams.includes('stderr') ? { stderr: chunk(proc.stderr, p.stderr_offset, max) } : {}),
    };
  }

  async write(p: Params<'proc.write'>): Promise<{ written: number }> {
    const proc = this.get(p.id);
    const w = proc.stdin;
    if (proc.state !== 'running') throw precondition(`process ${p.id} has ended`, 'its stdin is gone');
    if (!w) throw precondition(`process ${p.id} has no open stdin`, 'start it with open_stdin: true');
    if ('eof' in p) {
      w.end();
      return { written: 0 };
    }
    const data = Buffer.from(p.data, 'base64');
    if (w.writableEnded) throw precondition(`the stdin of process ${p.id} was closed`);
    await new Promise<void>((resolve) => w.write(data, () => resolve()));
    return { written: data.length };
  }

  signal(p: Params<'proc.signal'>): ProcStatus {
    const proc = this.get(p.id);
    let n: number;
    try {
      n = signalNumber(p.signal as NodeJS.Signals);
    } catch {
      throw badRequest(`unknown signal ${p.signal}`, 'e.g. SIGTERM, SIGINT, SIGKILL');
    }
    if (proc.state === 'running') {
      if (n === 9) proc.exec?.abort();
      else proc.exec?.kill(n);
    }
    return proc.status();
  }

  resize(p: Params<'proc.resize'>): ProcStatus {
    const proc = this.get(p.id);
    if (!proc.tty) throw precondition(`process ${p.id} is not on a terminal`, 'start it with proc.pty to resize it');
    if (proc.state === 'running') proc.exec?.resize(p.rows, p.cols);
    return proc.status();
  }

  async wait(p: Params<'proc.wait'>, ctx: OpContext): Promise<ProcStatus> {
    const proc = this.get(p.id);
    const until = [
      proc.ended,
      new Promise<void>((r) => ctx.signal.addEventListener('abort', () => r(), { once: true })),
    ];
    let timer: NodeJS.Timeout | undefined;
    if (p.wait_ms !== undefined) until.push(new Promise<void>((r) => (timer = setTimeout(r, p.wait_ms))));
    await Promise.race(until);
    clearTimeout(timer);
    if (ctx.signal.aborted && proc.state === 'running') throw cancelled();
    return proc.status();
  }

  /** proc.exec: start, wait, all output; a client that goes away kills the command's process group. */
  async exec(p: Params<'proc.exec'>, ctx: OpContext): Promise<ProcExecResult> {
    const proc = await this.start(p, ctx);
    const kill = (): void => proc.exec?.abort();
    ctx.signal.addEventListener('abort', kill, { once: true });
    try {
      await proc.ended;
    } finally {
      ctx.signal.removeEventListener('abort', kill);
      this.procs.delete(proc.id);
    }
    if (ctx.signal.aborted) throw cancelled();
    const out = proc.stdout.read(0);
    const err = proc.stderr.read(0);
    return {
      ...proc.status(),
      stdout: out.data.toString('base64'),
      stderr: err.data.toString('base64'),
      stdout_lost: out.lost,
      stderr_lost: err.lost,
    };
  }

  /** The VM is going away (`why`): its processes end with that error and are dropped. */
  forgetVm(vmId: string, why = 'the VM stopped'): void {
    for (const p of this.procs.values()) {
      if (p.vm.id !== vmId) continue;
      p.end({ error: why });
      this.procs.delete(p.id);
    }
    this.activity.delete(vmId);
  }
}
