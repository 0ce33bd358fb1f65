import { PassThrough } from 'node:stream';
import { commandFailed } from './node-runner.js';
import type { CommandRunner, DetachedOptions, RunOptions, RunResult, StreamingProcess } from './runner.js';

export interface FakeCall {
  argv: string[];
  input?: string | Buffer;
}

type Responder = (argv: readonly string[], opts: RunOptions) => RunResult | Promise<RunResult>;

/**
 * A CommandRunner for unit tests: records every call and answers from rules
 * matched on the program name (argv[0]) or a predicate; unmatched calls succeed
 * with empty output.
 */
export class FakeRunner implements CommandRunner {
  readonly calls: FakeCall[] = [];
  private readonly rules: { match: (argv: readonly string[]) => boolean; respond: Responder }[] = [];
  private nextPid = 4242;

  on(match: string | ((argv: readonly string[]) => boolean), respond: Responder | Partial<RunResult>): this {
    const m = typeof match === 'string' ? (argv: readonly string[]) => argv[0] === match : match;
    const r: Responder =
      typeof respond === 'function' ? respond : () => ({ code: 0, stdout: '', stderr: '', ...respond });
    this.rules.unshift({ match: m, respond: r });
    return this;
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    this.calls.push(opts.input === undefined ? { argv: [...argv] } : { argv: [...argv], input: opts.input });
    const rule = this.rules.find((r) => r.match(argv));
    return rule ? rule.respond(argv, opts) : { code: 0, stdout: '', stderr: '' };
  }

  async check(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const res = await this.run(argv, opts);
    if (res.code !== 0) throw commandFailed(argv, res);
    return res;
  }

  stream(argv: readonly string[]): StreamingProcess {
    this.calls.push({ argv: [...argv] });
    const out = new PassThrough();
    out.end();
    return { stdout: out, done: Promise.resolve({ code: 0, stdout: '', stderr: '' }), kill: () => undefined };
  }

  async spawnDetached(argv: readonly string[], _opts: DetachedOptions): Promise<number> {
    this.calls.push({ argv: [...argv] });
    return this.nextPid++;
  }

  /** argv of every call whose program is `program`. */
  callsTo(program: string): string[][] {
    return this.calls.filter((c) => c.argv[0] === program).map((c) => c.argv);
  }
}
