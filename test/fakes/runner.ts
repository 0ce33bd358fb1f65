import { PassThrough } from 'node:stream';
import { commandCancelled, commandFailed, commandTimedOut, missingBinary } from '../../src/system/node-runner.js';
import type {
  CommandRunner,
  DetachedOptions,
  RunOptions,
  RunResult,
  StreamingProcess,
} from '../../src/system/runner.js';

export interface FakeCall {
  argv: string[];
  input?: string | Buffer;
}

/** What a matched command does. Unset fields: exit 0, no output. */
export interface FakeOutcome extends Partial<RunResult> {
  /** The program is not installed: the runner's error for a spawn ENOENT. */
  missing?: boolean;
  /**
   * How long the command takes, in pretend time (nothing waits for real).
   * Longer than the caller's timeoutMs: the runner's timeout error.
   * Infinity: it never ends on its own; only the caller's timeout or abort
   * signal (or kill() of a stream) ends it, and with neither the call fails
   * the test, as the real command would hang.
   */
  durationMs?: number;
  /** spawnDetached: the pid to report (default: the next pretend pid). */
  pid?: number;
}

type Responder = (argv: readonly string[], opts: RunOptions) => FakeOutcome | Promise<FakeOutcome>;

export interface FakeRunnerOptions {
  /**
   * Strict (the default): a command no rule matches fails the call with
   * UnexpectedCommand and is kept in `unexpected`, so code that swallows
   * the error still fails `assertNoUnexpected()`. Permissive: unmatched
   * commands succeed with no output.
   */
  strict?: boolean;
}

/** A command the test did not expect (strict FakeRunner). */
export class UnexpectedCommand extends Error {
  constructor(readonly argv: readonly string[]) {
    super(`FakeRunner: unexpected command: ${JSON.stringify(argv)}; add a rule with .on(...) for it`);
    this.name = 'UnexpectedCommand';
  }
}

/** Never settles by itself: a command that hangs until its timeout or abort. */
function untilAborted(argv: readonly string[], signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(commandCancelled(argv));
    else signal.addEventListener('abort', () => reject(commandCancelled(argv)), { once: true });
  });
}

/**
 * A CommandRunner for unit tests: records every call and answers from rules
 * matched on the program name (argv[0]) or a predicate, newest rule first.
 * It fails the way NodeRunner does: a missing program, a timeout, an abort
 * signal (before or during the command), a non-zero exit of a stream.
 */
export class FakeRunner implements CommandRunner {
  readonly calls: FakeCall[] = [];
  /** Commands no rule matched (strict mode). */
  readonly unexpected: string[][] = [];
  /** Commands that never end, run with neither timeoutMs nor an abort signal (they would hang for real). */
  readonly unbounded: string[][] = [];
  private readonly rules: { match: (argv: readonly string[]) => boolean; respond: Responder }[] = [];
  private readonly strict: boolean;
  private nextPid = 4242;

  constructor(opts: FakeRunnerOptions = {}) {
    this.strict = opts.strict ?? true;
  }

  on(match: string | ((argv: readonly string[]) => boolean), respond: Responder | FakeOutcome): this {
    const m = typeof match === 'string' ? (argv: readonly string[]) => argv[0] === match : match;
    const r: Responder = typeof respond === 'function' ? respond : () => respond;
    this.rules.unshift({ match: m, respond: r });
    return this;
  }

  /**
   * Fails (listing them) when any command matched no rule, or hung with no
   * timeout or signal to end it, even if the code under test swallowed the error.
   */
  assertNoUnexpected(): void {
    const list = (argvs: string[][]): string => argvs.map((a) => `  ${JSON.stringify(a)}`).join('\n');
    if (this.unexpected.length > 0)
      throw new Error(`FakeRunner: ${this.unexpected.length} unexpected command(s):\n${list(this.unexpected)}`);
    if (this.unbounded.length > 0)
      throw new Error(
        `FakeRunner: ${this.unbounded.length} command(s) that never end were run without timeoutMs or signal:\n${list(this.unbounded)}`,
      );
  }

  /** The matched outcome (not yet applied), or UnexpectedCommand in strict mode. */
  private outcome(argv: readonly string[], opts: RunOptions): FakeOutcome | Promise<FakeOutcome> {
    const rule = this.rules.find((r) => r.match(argv));
    if (rule) return rule.respond(argv, opts);
    if (!this.strict) return {};
    this.unexpected.push([...argv]);
    throw new UnexpectedCommand(argv);
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    this.calls.push(opts.input === undefined ? { argv: [...argv] } : { argv: [...argv], input: opts.input });
    const { signal, timeoutMs } = opts;
    if (signal?.aborted) throw commandCancelled(argv);
    const pending = Promise.resolve(this.outcome(argv, opts));
    const o = await (signal ? Promise.race([pending, untilAborted(argv, signal)]) : pending);
    if (o.missing) throw missingBinary(argv);
    const duration = o.durationMs ?? 0;
    if (timeoutMs !== undefined && duration > timeoutMs) throw commandTimedOut(argv, timeoutMs);
    if (duration === Infinity) {
      if (signal) return untilAborted(argv, signal);
      this.unbounded.push([...argv]);
      throw new Error(
        `FakeRunner: ${JSON.stringify(argv)} never ends and the caller set no timeoutMs or signal: the real command would hang forever`,
      );
    }
    return { code: o.code ?? 0, stdout: o.stdout ?? '', stderr: o.stderr ?? '' };
  }

  async check(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const res = await this.run(argv, opts);
    if (res.code !== 0) throw commandFailed(argv, res);
    return res;
  }

  /** stdout carries the outcome's stdout; `done` gives its exit code (a kill() before the end: 128, as SIGKILL gives). */
  stream(argv: readonly string[], opts: Omit<RunOptions, 'input'> = {}): StreamingProcess {
    this.calls.push({ argv: [...argv] });
    const out = new PassThrough();
    const { signal } = opts;
    let killed!: () => void;
    const killedP = new Promise<'killed'>((resolve) => (killed = () => resolve('killed')));
    // An unexpected command throws here, at once (strict mode).
    const pending = Promise.resolve(this.outcome(argv, opts));
    pending.catch(() => undefined);
    const done = (async (): Promise<RunResult> => {
      try {
        if (signal?.aborted) throw commandCancelled(argv);
        const o = await (signal ? Promise.race([pending, untilAborted(argv, signal)]) : pending);
        if (o.missing) throw missingBinary(argv);
        if (o.durationMs === Infinity) {
          const end = await Promise.race([killedP, ...(signal ? [untilAborted(argv, signal)] : [])]);
          if (end === 'killed') return { code: 128, stdout: '', stderr: o.stderr ?? '' };
        }
        out.write(o.stdout ?? '');
        return { code: o.code ?? 0, stdout: '', stderr: o.stderr ?? '' };
      } finally {
        out.end();
      }
    })();
    // Like a child's exit, `done` may be observed late or never; an unobserved rejection must not crash the test process.
    done.catch(() => undefined);
    return { stdout: out, done, kill: () => killed() };
  }

  async spawnDetached(argv: readonly string[], opts: DetachedOptions): Promise<number> {
    this.calls.push({ argv: [...argv] });
    const o = await this.outcome(argv, { cwd: opts.cwd });
    if (o.missing) throw missingBinary(argv);
    return o.pid ?? this.nextPid++;
  }

  /** argv of every call whose program is `program`. */
  callsTo(program: string): string[][] {
    return this.calls.filter((c) => c.argv[0] === program).map((c) => c.argv);
  }
}
