import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { AppError, operationFailed } from '../errors.js';
import type { CommandRunner, DetachedOptions, RunOptions, RunResult, StreamingProcess } from './runner.js';

const STDERR_TAIL_LINES = 12;

/** Last lines of a command's stderr, for error messages. */
export function tail(text: string, lines = STDERR_TAIL_LINES): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function commandFailed(argv: readonly string[], res: RunResult): AppError {
  const err = tail(res.stderr) || tail(res.stdout);
  return operationFailed(`command failed (exit ${res.code}): ${argv.join(' ')}`, {
    detail: err,
    hint: err ? `its output ended with:\n${err}` : undefined,
  });
}

/** What the runner raises when argv[0] does not exist (spawn ENOENT). */
export function missingBinary(argv: readonly string[]): AppError {
  return new AppError('precondition', `${argv[0]} is not installed or not on PATH`, {
    hint: 'run `banger doctor` to see which host tools are missing and how to install them',
  });
}

/** What the runner raises when the caller's abort signal fires. */
export function commandCancelled(argv: readonly string[]): AppError {
  return new AppError('cancelled', `cancelled: ${argv.join(' ')}`);
}

/** What the runner raises when a command outlives its timeoutMs. */
export function commandTimedOut(argv: readonly string[], timeoutMs: number | undefined): AppError {
  return operationFailed(`command timed out after ${timeoutMs} ms: ${argv.join(' ')}`);
}

/** The real CommandRunner: node:child_process with argv arrays, never a shell. */
export class NodeRunner implements CommandRunner {
  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const [cmd, ...args] = argv;
      if (cmd === undefined) throw new Error('empty argv');
      const child = spawn(cmd, args, {
        cwd: opts.cwd,
        env: opts.env === undefined ? process.env : { ...process.env, ...opts.env },
        signal: opts.signal,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      const timer =
        opts.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              child.kill('SIGKILL');
            }, opts.timeoutMs);
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.stdin.on('error', () => undefined);
      child.on('error', (e: NodeJS.ErrnoException) => {
        if (timer) clearTimeout(timer);
        if (e.code === 'ENOENT') reject(missingBinary(argv));
        else if (e.name === 'AbortError') reject(commandCancelled(argv));
        else reject(e);
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        if (timedOut) {
          reject(commandTimedOut(argv, opts.timeoutMs));
          return;
        }
        resolve({
          code: code ?? (signal ? 128 : 1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        });
      });
      // A streamed stdin the command stops reading (it exited) is not an error of its own: its exit status says why.
      if (opts.stdin !== undefined) pipeline(opts.stdin, child.stdin).catch(() => undefined);
      else if (opts.input !== undefined) child.stdin.end(opts.input);
      else child.stdin.end();
    });
  }

  async check(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const res = await this.run(argv, opts);
    if (res.code !== 0) throw commandFailed(argv, res);
    return res;
  }

  stream(argv: readonly string[], opts: Omit<RunOptions, 'input'> = {}): StreamingProcess {
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new Error('empty argv');
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env === undefined ? process.env : { ...process.env, ...opts.env },
      signal: opts.signal,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // stdin: streamed when given (e.g. git pack-objects' rev list), else closed at once.
    child.stdin.on('error', () => undefined);
    if (opts.stdin !== undefined) pipeline(opts.stdin, child.stdin).catch(() => undefined);
    else child.stdin.end();
    const err: Buffer[] = [];
    child.stderr.on('data', (b: Buffer) => {
      err.push(b);
      if (err.length > 256) err.splice(0, err.length - 256);
    });
    const done = new Promise<RunResult>((resolve, reject) => {
      child.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') reject(missingBinary(argv));
        else if (e.name === 'AbortError') reject(commandCancelled(argv));
        else reject(e);
      });
      child.on('close', (code, signal) =>
        resolve({ code: code ?? (signal ? 128 : 1), stdout: '', stderr: Buffer.concat(err).toString('utf8') }),
      );
    });
    return { stdout: child.stdout, done, kill: () => void child.kill('SIGKILL') };
  }

  spawnDetached(argv: readonly string[], opts: DetachedOptions): Promise<number> {
    return new Promise((resolve, reject) => {
      const [cmd, ...args] = argv;
      if (cmd === undefined) throw new Error('empty argv');
      const fd = openSync(opts.logFile, 'a', 0o600);
      const child = spawn(cmd, args, { cwd: opts.cwd, detached: true, stdio: ['ignore', fd, fd] });
      closeSync(fd);
      child.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? missingBinary(argv) : e));
      child.on('spawn', () => {
        child.unref();
        if (child.pid === undefined) reject(new Error(`no pid for ${cmd}`));
        else resolve(child.pid);
      });
    });
  }
}
