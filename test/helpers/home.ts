import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repo root, from dist/test/helpers/home.js. */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const BANGER = join(REPO, 'bin', 'banger.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The config every test home starts with; a test that writes its own config.toml puts this first.
 * warm_start_background = false: no template is made behind a test's back (a test enables it).
 */
export const TEST_CONFIG = 'warm_start_background = false\n';

/**
 * An isolated banger home: every XDG variable points into one temp folder,
 * so the daemon, database, images, VMs and sockets of a test touch nothing else.
 * BANGER_TEST_HOME reuses a folder across runs (keeps the built image).
 */
export class TestHome {
  readonly root: string;
  readonly env: Record<string, string>;

  constructor(prefix = 'banger-it-') {
    this.root = process.env.BANGER_TEST_HOME ?? mkdtempSync(join(tmpdir(), prefix));
    mkdirSync(join(this.root, 'run'), { recursive: true, mode: 0o700 });
    this.env = {
      ...(process.env as Record<string, string>),
      HOME: join(this.root, 'home'),
      XDG_CONFIG_HOME: join(this.root, 'config'),
      XDG_STATE_HOME: join(this.root, 'state'),
      XDG_CACHE_HOME: join(this.root, 'cache'),
      XDG_RUNTIME_DIR: join(this.root, 'run'),
      NO_COLOR: '1',
    };
    mkdirSync(this.env.HOME as string, { recursive: true });
    mkdirSync(join(this.root, 'config', 'banger'), { recursive: true });
    writeFileSync(join(this.root, 'config', 'banger', 'config.toml'), TEST_CONFIG);
  }

  get stateDir(): string {
    return join(this.root, 'state', 'banger');
  }

  get runtimeDir(): string {
    return join(this.root, 'run', 'banger');
  }

  /** Runs the banger CLI with stdin closed; resolves with its exit code and output. `env` adds to this home's. */
  banger(args: readonly string[], timeoutMs = 15 * 60_000, env: Record<string, string> = {}): Promise<CliResult> {
    return run([BANGER, ...args], { ...this.env, ...env }, timeoutMs);
  }

  /**
   * Starts `banger args` in the background: `stdout()` so far; `stop()` sends SIGINT and resolves when it
   * exits (SIGKILL after 10 s); `wait()` resolves when it exits by itself. `env` adds to this home's.
   * `ctrlC()` sends SIGINT to the whole process group, as a terminal's Ctrl-C does to its foreground job
   * (the CLI and the ssh it runs): the CLI runs in a process group of its own for that.
   */
  bangerBackground(
    args: readonly string[],
    env: Record<string, string> = {},
  ): { stdout(): Buffer; stop(): Promise<CliResult>; wait(): Promise<CliResult>; ctrlC(): void } {
    const child = spawn(process.execPath, [BANGER, ...args], {
      env: { ...this.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    return {
      stdout: () => Buffer.concat(out),
      wait: async () => ({ code: await exited, stdout: Buffer.concat(out).toString(), stderr }),
      ctrlC: () => {
        if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, 'SIGINT');
      },
      stop: async () => {
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        const code = await exited;
        clearTimeout(timer);
        return { code, stdout: Buffer.concat(out).toString(), stderr };
      },
    };
  }

  /** Runs bangerd itself in the foreground (as `banger` would start it), with stdin closed. */
  bangerd(env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliResult> {
    return run([join(REPO, 'bin', 'bangerd.js')], { ...this.env, ...env }, timeoutMs);
  }

  /** pid of this home's daemon, from its pid file. */
  daemonPid(): number {
    return Number(readFileSync(join(this.runtimeDir, 'bangerd.pid'), 'utf8'));
  }

  /** pids of qemu processes whose command line mentions this home. */
  qemuPids(): number[] {
    const out = spawnSync('pgrep', ['-f', `qemu-system-x86_64.*${this.root}`], { encoding: 'utf8' }).stdout;
    return out.split('\n').filter(Boolean).map(Number);
  }

  daemonLog(): string {
    try {
      return readFileSync(join(this.stateDir, 'bangerd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops the daemon, kills any qemu left by this home, removes the folder (unless reused). */
  async cleanup(): Promise<void> {
    await this.banger(['daemon', 'stop'], 30_000);
    for (const pid of this.qemuPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (!process.env.BANGER_TEST_HOME) rmSync(this.root, { recursive: true, force: true });
  }
}

/** Runs a node script with stdin closed; a run past timeoutMs is killed (code -1). */
function run(argv: readonly string[], env: Record<string, string>, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

export function sh(argv: string[]): CliResult {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
