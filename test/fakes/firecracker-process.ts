import { appendFile } from 'node:fs/promises';
import type { DetachedOptions } from '../../src/system/runner.js';
import type { ProcessOps } from '../../src/vmm/firecracker/driver.js';
import { FakeFirecracker, type FakeFirecrackerOptions } from './firecracker-api.js';

/**
 * How a pretend firecracker reacts to SIGTERM, SIGINT and the other catchable
 * signals: it exits that many (pretend) milliseconds later, or never
 * ('ignore'). SIGKILL always ends it at once.
 */
export type TermReaction = number | 'ignore';

export interface FakeHostOptions {
  fake?: Omit<FakeFirecrackerOptions, 'id' | 'onCtrlAltDel'>;
  /** Whether the guest shuts down (and the process exits) on SendCtrlAltDel; default true. */
  guestHonoursCtrlAltDel?: boolean;
  /** How long (pretend ms) the guest takes to shut down after Ctrl-Alt-Del; default 1000. */
  guestShutdownMs?: number;
  /** Reaction to SIGTERM/SIGINT; default: exits 200 pretend ms later. */
  onTerm?: TermReaction;
  /** When set, a spawned "firecracker" prints this to its output file and exits at once. */
  exitOnSpawn?: string;
  /** When true, a spawned process stays alive but never opens its API socket. */
  hangOnSpawn?: boolean;
}

function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
}

/** Lets callbacks already queued (the fake API's Ctrl-Alt-Del handler) run first. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

/**
 * Stands in for firecracker processes in tests: `spawn` starts a FakeFirecracker
 * on the --api-sock path of the argv, and `process` answers liveness and
 * signals for the pretend pids (which are never signalled for real).
 * Time is pretend too: waiting for an exit advances `now` at once, to the
 * exit when it comes within the wait, else by the whole wait. Every signal
 * is recorded with the pretend time it was sent at.
 * Pass both to FirecrackerDriver's options.
 */
export class FakeFirecrackerHost {
  readonly argvs: string[][] = [];
  readonly signals: { pid: number; signal: NodeJS.Signals; at: number }[] = [];
  readonly fakes = new Map<number, FakeFirecracker>();
  /** Pretend milliseconds since the host was made. */
  now = 0;
  private readonly running = new Set<number>();
  /** When a running process will exit by itself (pretend time). */
  private readonly exitAt = new Map<number, number>();
  private nextPid = 900_001;

  constructor(private readonly opts: FakeHostOptions = {}) {}

  readonly spawn = async (argv: readonly string[], o: DetachedOptions): Promise<number> => {
    this.argvs.push([...argv]);
    const pid = this.nextPid++;
    if (this.opts.exitOnSpawn !== undefined) {
      await appendFile(o.logFile, `${this.opts.exitOnSpawn}\n`);
      return pid;
    }
    this.running.add(pid);
    if (this.opts.hangOnSpawn) return pid;
    const sock = flag(argv, '--api-sock');
    if (sock === undefined) throw new Error(`no --api-sock in ${argv.join(' ')}`);
    const id = flag(argv, '--id');
    const honours = this.opts.guestHonoursCtrlAltDel ?? true;
    const fake = await FakeFirecracker.start(sock, {
      ...this.opts.fake,
      ...(id === undefined ? {} : { id }),
      ...(honours ? { onCtrlAltDel: () => this.exitLater(pid, this.opts.guestShutdownMs ?? 1000) } : {}),
    });
    this.fakes.set(pid, fake);
    return pid;
  };

  readonly process: ProcessOps = {
    startTime: async (pid) => (this.alive(pid) ? 1 : undefined),
    isAlive: async (pid, startTime) => startTime === 1 && this.alive(pid),
    signal: (pid, signal) => {
      this.signals.push({ pid, signal, at: this.now });
      if (!this.alive(pid)) return false;
      const reaction: TermReaction = signal === 'SIGKILL' ? 0 : (this.opts.onTerm ?? 200);
      if (reaction !== 'ignore') this.exitLater(pid, reaction);
      return true;
    },
    waitForExit: async (pid, _startTime, timeoutMs) => {
      await settle();
      if (!this.alive(pid)) return true;
      const at = this.exitAt.get(pid);
      if (at !== undefined && at <= this.now + timeoutMs) {
        this.now = Math.max(this.now, at);
        this.alive(pid);
        return true;
      }
      this.now += timeoutMs;
      return false;
    },
  };

  /** The first fake started, for assertions. */
  get only(): FakeFirecracker {
    const f = [...this.fakes.values()][0];
    if (f === undefined) throw new Error('no fake firecracker was started');
    return f;
  }

  /** Whether pid runs at `now`; a process whose exit time has come exits here. */
  private alive(pid: number): boolean {
    const at = this.exitAt.get(pid);
    if (at !== undefined && at <= this.now) void this.exit(pid);
    return this.running.has(pid);
  }

  /** The process exits `ms` pretend milliseconds from now (or earlier, if already due). */
  private exitLater(pid: number, ms: number): void {
    if (!this.running.has(pid)) return;
    const at = this.now + ms;
    this.exitAt.set(pid, Math.min(at, this.exitAt.get(pid) ?? at));
    this.alive(pid);
  }

  /** The pretend process exits: its API stops answering. */
  async exit(pid: number): Promise<void> {
    this.running.delete(pid);
    this.exitAt.delete(pid);
    await this.fakes.get(pid)?.close();
  }

  async closeAll(): Promise<void> {
    for (const pid of [...this.running]) await this.exit(pid);
    for (const f of this.fakes.values()) await f.close();
  }
}
