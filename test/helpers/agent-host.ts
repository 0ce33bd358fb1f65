import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { REPO } from './home.js';

/** The agent built for the host by scripts/build-guest.sh (sanitizers on, --test-dir stubs). */
export const AGENT_HOST = join(REPO, 'dist', 'guest', 'banger-agent-host');

export interface HostAgentOptions {
  /** 'stdio': frames on the process's stdin/stdout; 'socket': a Unix listener. */
  mode: 'stdio' | 'socket';
  /** --serial: virtio-serial semantics (resync instead of closing). stdio only. */
  serial?: boolean;
  /** Run as this uid/gid (root only): the fuzz runs as nobody so mutated frames cannot harm the host. */
  uid?: number;
}

export interface HostAgent {
  proc: ChildProcess;
  /** Where shutdown and set-identity write instead of acting. */
  dir: string;
  /** stdio mode: the agent's stdin+stdout as one stream (made on first use: it reads stdout). */
  readonly stream: Duplex | undefined;
  /** socket mode: the listener path. */
  socketPath: string | undefined;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  /** socket mode: a new connection to the agent. */
  connect(): Promise<Socket>;
  /** Kills the agent if it still runs and removes its folder. */
  stop(): Promise<void>;
}

/** Leak checking off: the agent exits with sessions' buffers still allocated, on purpose. */
const SANITIZER_ENV = { ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0', UBSAN_OPTIONS: 'print_stacktrace=1' };

export async function startHostAgent(opts: HostAgentOptions): Promise<HostAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'banger-agent-it-'));
  let binary = AGENT_HOST;
  if (opts.uid !== undefined) {
    // The unprivileged user must be able to run the binary and write its folder.
    binary = join(dir, 'banger-agent-host');
    copyFileSync(AGENT_HOST, binary);
    chownSync(dir, opts.uid, opts.uid);
  }
  const socketPath = opts.mode === 'socket' ? join(dir, 'agent.sock') : undefined;
  const args =
    opts.mode === 'socket' ? ['--socket', socketPath as string] : ['--stdio', ...(opts.serial ? ['--serial'] : [])];
  const proc = spawn(binary, [...args, '--test-dir', dir], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...SANITIZER_ENV },
    ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid }),
  });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    if (err.length < 1 << 20) err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let stream: Duplex | undefined;
  const getStream = (): Duplex | undefined => {
    if (opts.mode !== 'stdio') return undefined;
    if (!stream) {
      stream = Duplex.from({ readable: proc.stdout ?? undefined, writable: proc.stdin ?? undefined });
      stream.on('error', () => undefined);
    }
    return stream;
  };
  proc.stdin?.on('error', () => undefined);
  if (opts.mode === 'socket') {
    // Ready once it says so (bounded: 10 s).
    const deadline = Date.now() + 10_000;
    while (!err.includes('ready') && Date.now() < deadline) {
      if (proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (!err.includes('ready')) throw new Error(`banger-agent-host did not start: ${err}`);
  }
  return {
    proc,
    dir,
    get stream() {
      return getStream();
    },
    socketPath,
    exited,
    stderr: () => err,
    connect: () =>
      new Promise((resolve, reject) => {
        const s = createConnection(socketPath as string);
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether a host process exists and is not a zombie waiting to be reaped. */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
