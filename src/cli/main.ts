import { Command, CommanderError } from 'commander';
import { AppError, badRequest } from '../errors.js';
import { NodeRunner } from '../system/node-runner.js';
import { Paths } from '../system/paths.js';
import { bangerVersion } from '../version.js';
import { DaemonClient } from './client.js';
import { register as registerApi } from './commands/api.js';
import { register as registerDaemon } from './commands/daemon/index.js';
import { register as registerDoctor } from './commands/doctor.js';
import { register as registerSshConfig } from './commands/ssh-config.js';
import { register as registerCompletion } from './commands/completion.js';
import { register as registerImage } from './commands/image/index.js';
import { register as registerKernel } from './commands/kernel/index.js';
import { register as registerVmDelete } from './commands/vm/delete.js';
import { register as registerVmLifecycle } from './commands/vm/lifecycle.js';
import { register as registerVmCreate } from './commands/vm/create.js';
import { register as registerVmCp } from './commands/vm/cp.js';
import { register as registerVmStats } from './commands/vm/stats.js';
import { register as registerVmAgent } from './commands/vm/agent.js';
import { register as registerVmPublish } from './commands/vm/publish.js';
import { register as registerVmSnapshot } from './commands/vm/snapshot.js';
import { register as registerVmWorkspace } from './commands/vm/workspace.js';
import { listVms, register as registerVmList } from './commands/vm/list.js';
import { register as registerVmLogs } from './commands/vm/logs.js';
import { register as registerVmRun } from './commands/vm/run.js';
import { register as registerVmSsh } from './commands/vm/ssh.js';
import { register as registerVmExec } from './commands/vm/exec.js';
import type { Act, CliContext, ExitCode } from './context.js';
import { renderError } from './render/errors.js';
import { makeStyle } from './render/style.js';

/** Splits `banger ... -- cmd args` at the first `--`: the guest command is never parsed as flags. */
export function splitGuestCommand(argv: readonly string[]): { own: string[]; guest: string[] | undefined } {
  const i = argv.indexOf('--');
  if (i < 0) return { own: [...argv], guest: undefined };
  return { own: argv.slice(0, i), guest: argv.slice(i + 1) };
}

/**
 * No flag value or argument of any command may be empty: `--name ''` or
 * `vm show ''` is a mistake (a quoting slip, an unset shell variable), never a
 * request for the default, and is named here before anything reaches the daemon.
 */
export function rejectEmptyValues(cmd: Command): void {
  const check = (label: string, v: string, hint: string): void => {
    if (v.trim() === '') throw badRequest(`invalid ${label} ${JSON.stringify(v)}: must not be empty`, hint);
  };
  for (const opt of cmd.options) {
    if (!opt.required && !opt.optional) continue;
    const parse = opt.parseArg;
    const label = opt.long ?? opt.short ?? opt.flags;
    opt.argParser((v: string, acc: unknown) => {
      check(label, v, `give ${label} a value, or leave ${label} out`);
      return parse ? parse(v, acc) : v;
    });
  }
  for (const arg of cmd.registeredArguments) {
    const parse = arg.parseArg;
    const label = `<${arg.name()}>`;
    arg.argParser((v: string, acc: unknown) => {
      check(label, v, `pass a non-empty ${label}`);
      if (parse) return parse(v, acc);
      return arg.variadic ? [...((acc as string[] | undefined) ?? []), v] : v;
    });
  }
  for (const sub of cmd.commands) rejectEmptyValues(sub);
}

/**
 * The one place a command's result is printed: `--json` prints its JSON, else
 * its text; then its stderr part; then the exit code is set. Commander passes
 * the command itself as an action's last argument, with its parsed options.
 */
export function resultPrinter(ctx: () => CliContext, setCode: (c: ExitCode) => void): Act {
  return (fn) =>
    async (...args) => {
      const r = await fn(...args);
      const cmd = args.at(-1);
      const json = cmd instanceof Command && cmd.opts().json === true && r.json !== undefined;
      const c = ctx();
      const out = json ? `${JSON.stringify(r.json, null, 2)}\n` : r.text;
      if (out) c.out.write(out);
      if (r.err) c.err.write(r.err);
      setCode(r.code ?? 0);
    };
}

export function buildProgram(
  ctx: () => CliContext,
  setCode: (c: ExitCode) => void,
  guest: () => string[] | undefined,
): Command {
  const act = resultPrinter(ctx, setCode);
  const version = ctx().version;
  const program = new Command('banger')
    .description('one-command development sandboxes on microVMs')
    .version(version, '-V, --version', 'print the banger version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.configureOutput({ writeErr: (s) => ctx().err.write(s), writeOut: (s) => ctx().out.write(s) });

  const vm = program.command('vm').description('create, run and manage VMs');
  registerVmRun(vm, ctx, act, guest);
  registerVmList(vm, ctx, act);
  registerVmLogs(vm, ctx, act);
  registerVmSsh(vm, ctx, act, guest);
  registerVmExec(vm, ctx, act, guest);
  registerVmDelete(vm, ctx, act);
  registerVmLifecycle(vm, ctx, act);
  registerVmCreate(vm, ctx, act);
  registerVmCp(vm, ctx, act);
  registerVmStats(vm, ctx, act);
  registerVmAgent(vm, ctx, act);
  registerVmPublish(vm, ctx, act);
  registerVmSnapshot(vm, ctx, act);
  registerVmWorkspace(vm, ctx, act);
  program
    .command('ps')
    .description('alias of `vm list`')
    .option('--json', 'print JSON')
    .action(act(() => listVms(ctx())));
  registerImage(program, ctx, act);
  registerKernel(program, ctx, act);
  registerDaemon(program, ctx, act);
  registerApi(program, ctx, act);
  registerDoctor(program, ctx, act);
  registerSshConfig(program, ctx, act);
  registerCompletion(program, ctx, act);
  program
    .command('version')
    .description('print the banger version')
    .action(act(() => ({ text: `banger ${version}\n` })));
  for (const cmd of program.commands) cmd.exitOverride();
  for (const cmd of vm.commands) cmd.exitOverride();
  rejectEmptyValues(program);
  return program;
}

/** parse → call → render → exit code. The only process.exit of the CLI. */
export async function main(argv: string[]): Promise<never> {
  const uid = process.getuid?.() ?? 0;
  const paths = new Paths(process.env, uid);
  const runner = new NodeRunner();
  const version = bangerVersion();
  const style = makeStyle(Boolean(process.stderr.isTTY), process.env);
  const c: CliContext = {
    paths,
    runner,
    client: new DaemonClient(paths, runner, version),
    out: process.stdout,
    err: process.stderr,
    style,
    stdinIsTty: Boolean(process.stdin.isTTY),
    version,
    env: process.env,
  };
  const { own, guest } = splitGuestCommand(argv);
  let code: ExitCode = 0;
  const program = buildProgram(
    () => c,
    (n) => (code = n),
    () => guest,
  );
  try {
    await program.parseAsync(own, { from: 'user' });
  } catch (e) {
    // `vm run ... -- cmd` passes the guest's status through, so banger's own failures are 125 there (SPEC §4).
    const commandMode =
      guest !== undefined && guest.length > 0 && own[0] === 'vm' && (own[1] === 'run' || own[1] === 'exec');
    if (e instanceof CommanderError) {
      code = e.exitCode === 0 ? 0 : commandMode ? 125 : 2;
    } else {
      process.stderr.write(renderError(e, style));
      code = commandMode ? 125 : e instanceof AppError ? 1 : 70;
    }
  }
  await new Promise<void>((r) => process.stdout.write('', () => r()));
  process.exit(code);
}
