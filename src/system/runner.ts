import type { Readable } from 'node:stream';

/** What one finished host command produced. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Bytes or text written to the command's stdin (then closed). */
  input?: string | Buffer;
  /** Bytes streamed to the command's stdin as they come (then closed), e.g. a tar; instead of input. */
  stdin?: AsyncIterable<Uint8Array>;
  cwd?: string;
  env?: Record<string, string | undefined>;
  signal?: AbortSignal;
  /** Kill the command after this many milliseconds (the error says so). */
  timeoutMs?: number;
}

/** A running command whose stdout is consumed as a stream (e.g. mmdebstrap's tar). */
export interface StreamingProcess {
  stdout: Readable;
  /** Resolves when the process exits; stdout is not included in the result. */
  done: Promise<RunResult>;
  kill(): void;
}

export interface DetachedOptions {
  /** File that receives the process's stdout and stderr. */
  logFile: string;
  cwd?: string;
}

/**
 * The seam for every host program banger runs: argv arrays only, never a
 * shell string. The real one lives in ./node-runner.ts, the fake in
 * test/fakes/runner.ts.
 */
export interface CommandRunner {
  /** Runs argv and returns its result whatever the exit code. */
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Runs argv; a non-zero exit becomes an AppError naming argv, code and stderr tail. */
  check(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts argv with stdout as a stream. */
  stream(argv: readonly string[], opts?: Omit<RunOptions, 'input'>): StreamingProcess;
  /** Starts argv in its own session, detached from the caller; returns its pid. */
  spawnDetached(argv: readonly string[], opts: DetachedOptions): Promise<number>;
}
