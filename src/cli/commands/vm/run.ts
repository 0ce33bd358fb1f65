import type { Command } from 'commander';
import type { VmView } from '../../../api/methods.js';
import { AppError, badRequest } from '../../../errors.js';
import { sshArgv } from '../../../ssh/argv.js';
import { parseEnvFlags } from '../../../ssh/env.js';
import { sshFailure } from '../../../ssh/failure.js';
import { runAttached } from '../../../system/interactive.js';
import type { Act, CliContext, CommandResult } from '../../context.js';
import { renderError } from '../../render/errors.js';
import { runAgentSession } from '../../session/agent-exec.js';
import { progressPrinter } from '../../render/progress.js';
import { formatBytes, formatDuration } from '../../render/table.js';
import { timingsOf } from './multi.js';
import { addVmSpecFlags, vmSpecParams, type VmSpecFlags } from './spec.js';
import { GUEST_REPO } from '../../session/workspace-ship.js';
import { bootstrapTools } from '../../session/bootstrap.js';
import { bootstrapDecision, toolFiles } from '../../../workspace/bootstrap.js';
import {
  addWorkspaceFlags,
  dryRunResult,
  planWorkspace,
  remoteCommand,
  shipInto,
  type WorkspaceFlags,
} from './workspace.js';

/** Exit status when banger itself failed in command mode (never ssh's 255). */
export const EXIT_BANGER_FAILED = 125;

export interface RunOptions extends VmSpecFlags, WorkspaceFlags {
  /** false with --no-bootstrap. */
  bootstrap?: boolean;
  rm?: boolean;
  detach?: boolean;
  env?: string[];
  timings?: boolean;
}

export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function register(vm: Command, ctx: () => CliContext, act: Act, guestCmd: () => string[] | undefined): void {
  const cmdRun = addVmSpecFlags(
    vm
      .command('run')
      .description('create a VM, start it and open a shell in it (or run a command and exit with its status)')
      .argument('[path]', `a git checkout whose tracked files ship to ${GUEST_REPO}, where the shell or command runs`),
  )
    .option('--rm', 'delete the VM when the session or command ends')
    .option('-d, --detach', 'create and start the VM, then exit')
    .option('-e, --env <KEY=VAL>', 'environment variable for the guest command (repeatable)', collect);
  addWorkspaceFlags(cmdRun, 'with a path: ')
    .option('--no-bootstrap', "with a path: skip `mise install` for the repo's .mise.toml / .tool-versions")
    .option('--timings', 'print where the seconds went: the boot (host and guest side), the session, --rm (on stderr)')
    .addHelpText(
      'after',
      `
Examples:
  banger vm run                                  a shell in a fresh Debian VM
  banger vm run --rm -- make -C /root test       run a command, exit with its status, delete the VM
  banger vm run --rm . -- make test              ship this checkout, run make test in it
  banger vm run --name dev --vcpu 2 --memory 2G -d`,
    )
    .action(act((path: string | undefined, opts: RunOptions) => runVm(ctx(), path, opts, guestCmd())));
}

export async function runVm(
  c: CliContext,
  path: string | undefined,
  opts: RunOptions,
  cmd: string[] | undefined,
): Promise<CommandResult> {
  // Interactive: progress, the session and its failures go to the terminal as they happen.
  const commandMode = cmd !== undefined && cmd.length > 0;
  const failCode = commandMode ? EXIT_BANGER_FAILED : 1;
  let created: VmView | undefined;
  let shipFailed = false;
  const abort = new AbortController();
  const onSigint = (): void => abort.abort();
  let interrupted = false;
  const onSessionSigint = (): void => {
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  try {
    if (opts.detach && opts.rm)
      throw badRequest(
        '-d/--detach cannot be combined with --rm',
        'a detached VM is kept; delete it later with `banger vm delete NAME`',
      );
    if (opts.detach && commandMode)
      throw badRequest(
        '-d/--detach cannot be combined with -- cmd',
        'use `banger vm ssh NAME -- cmd` after a detached run',
      );
    if (opts.dryRun && path === undefined)
      throw badRequest(
        '--dry-run needs a path: it lists the files a workspace would ship',
        'banger vm run . --dry-run',
      );
    const env = parseEnvFlags(opts.env ?? []);
    // Before any VM exists: a path that cannot ship fails here.
    const ws = path === undefined ? undefined : await planWorkspace(c, path, opts);
    if (ws && opts.dryRun) return dryRunResult(ws);
    const bootstrap = ws !== undefined && bootstrapDecision(toolFiles(ws.files), opts);
    // A command without a terminal or workspace runs through the agent (below): no wait for sshd.
    const viaAgent = commandMode && !c.stdinIsTty && ws === undefined;
    const params = { ...vmSpecParams(opts), start: true, ...(viaAgent ? { ready: 'agent' as const } : {}) };
    const started = Date.now();
    created = await c.client.call('vm.create', params, {
      onEvent: progressPrinter(c.err, c.style),
      signal: abort.signal,
    });
    c.err.write(
      `${c.style.dim('spec:')} ${created.vcpu} vcpu | ${created.memory_mib} MiB | ${formatBytes(created.disk_bytes)} disk\n`,
    );
    c.err.write(`${c.style.dim(`VM ${created.name} ready in ${formatDuration(Date.now() - started)}`)}\n`);
    if (opts.timings) c.err.write(timingsOf(created));
    const info = await c.client.call('vm.ssh_info', { ref: created.name }, { signal: abort.signal });
    if (ws) {
      shipFailed = true;
      await shipInto(c, created.name, info, ws, false, abort.signal);
      shipFailed = false;
      if (bootstrap) await bootstrapTools(c, created.name, info, commandMode || opts.detach === true, abort.signal);
    }
    if (opts.detach) return { text: `${created.name}\n`, err: `connect with: banger vm ssh ${created.name}\n` };
    const cwd = ws ? GUEST_REPO : undefined;
    process.off('SIGINT', onSigint);
    // A command without a terminal goes through the guest's agent when it has one (warm or cold
    // alike): an sshd session (its fork, re-exec and key exchange) costs a second under emulation.
    // No sshd in the guest: every session goes through the agent.
    if (!info.has_sshd || (commandMode && !c.stdinIsTty && info.agent)) {
      const sessionStart = Date.now();
      const s = await runAgentSession(c.client, {
        ref: created.name,
        argv: commandMode ? cmd : undefined,
        env,
        tty: c.stdinIsTty,
        cwd,
      });
      if (opts.timings)
        c.err.write(
          `session (agent ${commandMode ? 'command' : 'shell'}): ${formatDuration(Date.now() - sessionStart)}\n`,
        );
      if (s.interrupted) {
        c.err.write('banger: interrupted\n');
        return { code: 130 };
      }
      if (!commandMode && !opts.rm) c.err.write(stillRunning(c, created.name));
      return { code: s.code };
    }
    const remote = remoteCommand(cmd, env, cwd);
    const argv = sshArgv(
      'ssh',
      info,
      remote === undefined ? { tty: c.stdinIsTty } : { tty: c.stdinIsTty, remoteCommand: remote },
    );
    // Ctrl-C during the session: the guest's shell gets it through a TTY; without one it kills ssh,
    // which then exits 255. That is the user's interrupt, not an ssh failure to diagnose. Noting it
    // (until the end) also keeps a Ctrl-C during the failure probe below from skipping the --rm cleanup.
    process.on('SIGINT', onSessionSigint);
    const sessionStart = Date.now();
    const code = await runAttached(argv);
    if (opts.timings)
      c.err.write(`session (ssh ${commandMode ? 'command' : 'shell'}): ${formatDuration(Date.now() - sessionStart)}\n`);
    if (code === 255) {
      // Under load the Ctrl-C's SIGINT can be handled after ssh's exit: ask again once the probe ran.
      const failure = interrupted ? undefined : await sshFailure(c.runner, info);
      if (interrupted || failure === undefined) {
        c.err.write('banger: interrupted\n');
        return { code: 130 };
      }
      c.err.write(renderError(failure, c.style));
      return { code: failCode };
    }
    if (!commandMode && !opts.rm) c.err.write(stillRunning(c, created.name));
    return { code };
  } catch (e) {
    if (e instanceof AppError && e.code === 'cancelled') {
      c.err.write('banger: interrupted\n');
      return { code: commandMode ? EXIT_BANGER_FAILED : 130 };
    }
    c.err.write(renderError(e, c.style));
    return { code: failCode };
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGINT', onSessionSigint);
    // A VM whose workspace did not ship is not what was asked for: it goes too.
    const rmStart = Date.now();
    if ((opts.rm || shipFailed) && created) await removeSurvivingCtrlC(c, created.name);
    if (opts.timings && opts.rm && created) c.err.write(`--rm (VM deleted): ${formatDuration(Date.now() - rmStart)}\n`);
  }
}

const stillRunning = (c: CliContext, name: string): string =>
  c.style.dim(`VM ${name} is still running; stop it with \`banger vm delete ${name}\`\n`);

/** --rm cleanup: a second Ctrl-C must not leave the VM behind. */
async function removeSurvivingCtrlC(c: CliContext, name: string): Promise<void> {
  const ignore = (): void => undefined;
  process.on('SIGINT', ignore);
  try {
    await c.client.call('vm.delete', { ref: name });
  } catch (e) {
    c.err.write(renderError(e, c.style));
  } finally {
    process.off('SIGINT', ignore);
  }
}
