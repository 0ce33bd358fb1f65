import type { Command } from 'commander';
import type { VmView } from '../../../api/methods.js';
import { AppError, badRequest } from '../../../errors.js';
import { sshArgv } from '../../../ssh/argv.js';
import { parseEnvFlags, withEnv } from '../../../ssh/env.js';
import { sshFailure } from '../../../ssh/failure.js';
import { shellJoin } from '../../../ssh/quote.js';
import { runAttached } from '../../../system/interactive.js';
import type { Act, CliContext, CommandResult } from '../../context.js';
import { renderError } from '../../render/errors.js';
import { runAgentSession } from '../../session/agent-exec.js';
import { progressPrinter } from '../../render/progress.js';
import { formatBytes, formatDuration } from '../../render/table.js';
import { addVmSpecFlags, vmSpecParams, type VmSpecFlags } from './spec.js';

/** Exit status when banger itself failed in command mode (never ssh's 255). */
export const EXIT_BANGER_FAILED = 125;

export interface RunOptions extends VmSpecFlags {
  rm?: boolean;
  detach?: boolean;
  env?: string[];
}

export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function register(vm: Command, ctx: () => CliContext, act: Act, guestCmd: () => string[] | undefined): void {
  addVmSpecFlags(
    vm
      .command('run')
      .description('create a VM, start it and open a shell in it (or run a command and exit with its status)')
      .argument('[path]', 'a git checkout to ship into the VM (workspaces: not supported yet)'),
  )
    .option('--rm', 'delete the VM when the session or command ends')
    .option('-d, --detach', 'create and start the VM, then exit')
    .option('-e, --env <KEY=VAL>', 'environment variable for the guest command (repeatable)', collect)
    .addHelpText(
      'after',
      `
Examples:
  banger vm run                                  a shell in a fresh Debian VM
  banger vm run --rm -- make -C /root test       run a command, exit with its status, delete the VM
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
  const abort = new AbortController();
  const onSigint = (): void => abort.abort();
  let interrupted = false;
  const onSessionSigint = (): void => {
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  try {
    if (path !== undefined) {
      throw new AppError('bad_request', `workspaces (vm run ${path}) are not supported by this banger yet`, {
        hint: 'run without a path; copy files with scp through `banger vm ssh` meanwhile',
      });
    }
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
    const env = parseEnvFlags(opts.env ?? []);
    const params = { ...vmSpecParams(opts), start: true };
    const started = Date.now();
    created = await c.client.call('vm.create', params, {
      onEvent: progressPrinter(c.err, c.style),
      signal: abort.signal,
    });
    c.err.write(
      `${c.style.dim('spec:')} ${created.vcpu} vcpu | ${created.memory_mib} MiB | ${formatBytes(created.disk_bytes)} disk\n`,
    );
    c.err.write(`${c.style.dim(`VM ${created.name} ready in ${formatDuration(Date.now() - started)}`)}\n`);
    if (opts.detach) return { text: `${created.name}\n`, err: `connect with: banger vm ssh ${created.name}\n` };
    const info = await c.client.call('vm.ssh_info', { ref: created.name }, { signal: abort.signal });
    process.off('SIGINT', onSigint);
    if (!info.has_sshd) {
      // No sshd in the guest: the same session through its agent.
      const s = await runAgentSession(c.client, {
        ref: created.name,
        argv: commandMode ? cmd : undefined,
        env,
        tty: c.stdinIsTty,
      });
      if (s.interrupted) {
        c.err.write('banger: interrupted\n');
        return { code: 130 };
      }
      if (!commandMode && !opts.rm) c.err.write(stillRunning(c, created.name));
      return { code: s.code };
    }
    const argv = sshArgv(
      'ssh',
      info,
      commandMode ? { tty: c.stdinIsTty, remoteCommand: withEnv(shellJoin(cmd), env) } : { tty: c.stdinIsTty },
    );
    // Ctrl-C during the session: the guest's shell gets it through a TTY; without one it kills ssh,
    // which then exits 255. That is the user's interrupt, not an ssh failure to diagnose. Noting it
    // (until the end) also keeps a Ctrl-C during the failure probe below from skipping the --rm cleanup.
    process.on('SIGINT', onSessionSigint);
    const code = await runAttached(argv);
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
    if (opts.rm && created) await removeSurvivingCtrlC(c, created.name);
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
