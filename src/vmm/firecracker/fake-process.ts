import { appendFile } from 'node:fs/promises';
import type { DetachedOptions } from '../../system/runner.js';
import type { ProcessOps } from './driver.js';
import { FakeFirecracker, type FakeFirecrackerOptions } from './fake-api.js';

export interface FakeHostOptions {
  fake?: Omit<FakeFirecrackerOptions, 'id' | 'onCtrlAltDel'>;
  /** Whether the guest shuts down (and the process exits) on SendCtrlAltDel; default true. */
  guestHonoursCtrlAltDel?: boolean;
  /** When set, a spawned "firecracker" prints this to its output file and exits at once. */
  exitOnSpawn?: string;
  /** When true, a spawned process stays alive but never opens its API socket. */
  hangOnSpawn?: boolean;
}

function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
}

/**
 * Stands in for firecracker processes in tests: `spawn` starts a FakeFirecracker
 * on the --api-sock path of the argv, and `process` answers liveness and
 * signals for the pretend pids (which are never signalled for real).
 * Pass both to FirecrackerDriver's options.
 */
export class FakeFirecrackerHost {
  readonly argvs: string[][] = [];
  readonly signals: { pid: number; signal: NodeJS.Signals }[] = [];
  readonly fakes = new Map<number, FakeFirecracker>();
  private readonly running = new Set<number>();
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
      ...(honours ? { onCtrlAltDel: () => void this.exit(pid) } : {}),
    });
    this.fakes.set(pid, fake);
    return pid;
  };

  readonly process: ProcessOps = {
    startTime: async (pid) => (this.running.has(pid) ? 1 : undefined),
    isAlive: async (pid, startTime) => startTime === 1 && this.running.has(pid),
    signal: (pid, signal) => {
      this.signals.push({ pid, signal });
      if (!this.running.has(pid)) return false;
      void this.exit(pid);
      return true;
    },
    waitForExit: async (pid, _startTime, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      while (this.running.has(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      return !this.running.has(pid);
    },
  };

  /** The first fake started, for assertions. */
  get only(): FakeFirecracker {
    const f = [...this.fakes.values()][0];
    if (f === undefined) throw new Error('no fake firecracker was started');
    return f;
  }

  /** The pretend process exits: its API stops answering. */
  async exit(pid: number): Promise<void> {
    this.running.delete(pid);
    await this.fakes.get(pid)?.close();
  }

  async closeAll(): Promise<void> {
    for (const pid of [...this.running]) await this.exit(pid);
    for (const f of this.fakes.values()) await f.close();
  }
}
