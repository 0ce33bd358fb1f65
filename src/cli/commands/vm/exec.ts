import type { Command } from 'commander';
import type { VmView, WorkspaceView } from '../../../api/methods.js';
import { AppError, badRequest, precondition } from '../../../errors.js';
import { sshArgv } from '../../../ssh/argv.js';
import { parseEnvFlags, withEnv } from '../../../ssh/env.js';
import { sshFailure } from '../../../ssh/failure.js';
import { shellJoin } from '../../../ssh/quote.js';
import type { CommandRunner } from '../../../system/runner.js';
import { runAttached } from '../../../system/interactive.js';
import type { Act, CliContext, CommandResult } from '../../context.js';
import { renderError } from '../../render/errors.js';
import { runAgentSession } from '../../session/agent-exec.js';
import { GUEST_REPO, probeGuest } from '../../session/workspace-ship.js';
import { collect, EXIT_BANGER_FAILED } from './run.js';
import { planWorkspace, shipInto } from './workspace.js';

/*
 * `vm exec <vm> -- cmd`: the command in the VM's workspace (or --guest-path)
 * through a login shell, its exit status verbatim (125 when banger itself
 * failed). The arguments reach the command exactly: they are positional
 * parameters of the guest script, never spliced into it.
 */

/** Exit status of the guest script when the directory cannot be entered. */
const EXIT_NO_DIR = 125;

/** argv in the guest: cd into dir inside the user's login shell, then exec the command as given. */
export function execArgv(dir: string, cmd: readonly string[]): string[] {
  const inner = `cd -- "$1" 2>/dev/null || { echo "banger: no directory $1 in the guest" >&2; exit ${EXIT_NO_DIR}; }; shift; exec "$@"`;
  return ['sh', '-c', `exec "\${SHELL:-/bin/sh}" -l -c '${inner}' sh "$@"`, 'sh', dir, ...cmd];
}

/** The warning when the host repo moved since prepare; undefined when it did not (or cannot be told). */
export function headMovedWarning(vm: string, ws: WorkspaceView, hostHead: string | undefined): string | undefined {
  if (!ws.head || !hostHead || hostHead === ws.head) return undefined;
  return `warning: ${ws.host_path} is at ${hostHead.slice(0, 12)} but ${vm}:${ws.guest_path} was prepared at ${ws.head.slice(0, 12)} (--auto-prepare re-ships it; or banger vm workspace prepare ${vm} ${ws.host_path})\n`;
}

async function hostHead(runner: CommandRunner, path: string): Promise<string | undefined> {
  const r = await runner.run(['git', '-C', path, 'rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], {
    env: { GIT_DIR: undefined, GIT_WORK_TREE: undefined },
  });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

export interface ExecFlags {
  guestPath?: string;
  autoPrepare?: boolean;
  env?: string[];
}

export async function execVm(
  c: CliContext,
  ref: string,
  o: ExecFlags,
  cmd: string[] | undefined,
): Promise<CommandResult> {
  try {
    if (!cmd || cmd.length === 0)
      throw badRequest(`vm exec ${ref} needs a command after --`, `banger vm exec ${ref} -- make test`);
    if (o.guestPath !== undefined && !o.guestPath.startsWith('/'))
      throw badRequest(`invalid --guest-path ${JSON.stringify(o.guestPath)}: not absolute`, '--guest-path /root/src');
    const env = parseEnvFlags(o.env ?? []);
    const view: VmView = await c.client.call('vm.show', { ref });
    if (view.state !== 'running')
      throw precondition(
        `VM ${view.name} is ${view.state}`,
        view.state === 'paused'
          ? `resume it first: banger vm resume ${view.name}`
          : `start it first: banger vm start ${view.name}`,
      );
    const info = await c.client.call('vm.ssh_info', { ref: view.name });
    const ws = view.workspace;
    if (ws && o.guestPath === undefined) {
      const now = await hostHead(c.runner, ws.host_path);
      const moved = headMovedWarning(view.name, ws, now);
      if (moved && o.autoPrepare) {
        const st = await probeGuest(c.runner, c.client, view.name, info);
        if (st.target === 'dirty')
          c.err.write(
            `warning: ${view.name}:${ws.guest_path} has uncommitted changes: not re-shipped (banger vm workspace prepare --force replaces them)\n`,
          );
        else await shipInto(c, view.name, info, await planWorkspace(c, ws.host_path, {}), false);
      } else if (moved) c.err.write(moved);
    }
    const dir = o.guestPath ?? ws?.guest_path ?? GUEST_REPO;
    const argv = execArgv(dir, cmd);
    const tty = c.stdinIsTty && (c.out as NodeJS.WriteStream).isTTY === true;
    if (!info.has_sshd) {
      const s = await runAgentSession(c.client, { ref: view.name, argv, env, tty });
      return s.interrupted ? { code: 130, err: 'banger: interrupted\n' } : { code: s.code };
    }
    const code = await runAttached(sshArgv('ssh', info, { tty, remoteCommand: withEnv(shellJoin(argv), env) }));
    if (code === 255) return { code: EXIT_BANGER_FAILED, err: renderError(await sshFailure(c.runner, info), c.style) };
    return { code };
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    return { code: EXIT_BANGER_FAILED, err: renderError(e, c.style) };
  }
}

export function register(vm: Command, ctx: () => CliContext, act: Act, guestCmd: () => string[] | undefined): void {
  vm.command('exec')
    .description(`run a command in a VM's workspace (${GUEST_REPO} unless --guest-path) and exit with its status`)
    .argument('<vm>', 'VM name or id')
    .option('--guest-path <dir>', 'run in this guest directory instead of the workspace')
    .option(
      '--auto-prepare',
      "re-ship the workspace first when the host repo's HEAD moved (and the guest tree is clean)",
    )
    .option('-e, --env <KEY=VAL>', 'environment variable for the command (repeatable)', collect)
    .addHelpText(
      'after',
      '\nExamples:\n  banger vm exec dev -- make test\n  banger vm exec dev --guest-path /tmp -- ls',
    )
    .action(act((ref: string, o: ExecFlags) => execVm(ctx(), ref, o, guestCmd())));
}
