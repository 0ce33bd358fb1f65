import type { Command } from 'commander';
import type { VmSessionInfo } from '../../../api/methods.js';
import { withEnv } from '../../../ssh/env.js';
import { shellJoin, shellQuote } from '../../../ssh/quote.js';
import { preflight, type WorkspacePlan } from '../../../workspace/preflight.js';
import type { Act, CliContext, CommandResult } from '../../context.js';
import { GUEST_REPO, shipWorkspace } from '../../session/workspace-ship.js';
import { registerExport } from './workspace-export.js';

/* Workspaces on the CLI: `vm workspace prepare`, and the steps `vm run PATH` takes. */

export interface WorkspaceFlags {
  includeUntracked?: boolean;
  dryRun?: boolean;
}

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

/** The one-line notice when untracked files were left out; undefined when none were. */
export function untrackedNotice(plan: WorkspacePlan): string | undefined {
  if (plan.skippedUntracked === 0) return undefined;
  return `note: ${plural(plan.skippedUntracked, 'untracked file')} not shipped (--include-untracked ships them)\n`;
}

/** --dry-run: the exact file list on stdout (one per line), what it is on stderr; nothing is created. */
export function dryRunResult(plan: WorkspacePlan): CommandResult {
  const head = plan.head ? plan.head.slice(0, 12) : 'no commits';
  const untracked = plan.includeUntracked
    ? 'untracked files included'
    : `untracked files not included${plan.skippedUntracked ? ` (${plan.skippedUntracked} left out)` : ''}`;
  return {
    text: plan.files.map((f) => `${f}\n`).join(''),
    err: `dry run: ${plural(plan.files.length, 'file')} from ${plan.root} (${head}) would ship to ${GUEST_REPO}; ${untracked}; nothing created\n`,
  };
}

/** The remote command of an ssh session: the command (or a login shell) in cwd when there is one. */
export function remoteCommand(
  cmd: readonly string[] | undefined,
  env: readonly [string, string][],
  cwd: string | undefined,
): string | undefined {
  const run = cmd && cmd.length > 0 ? withEnv(shellJoin(cmd), env) : cwd ? 'exec "${SHELL:-/bin/sh}" -l' : undefined;
  return run !== undefined && cwd ? `cd ${shellQuote(cwd)} && ${run}` : run;
}

/** Host-side checks and the file list, before any VM exists; prints the untracked notice. */
export async function planWorkspace(c: CliContext, path: string, flags: WorkspaceFlags): Promise<WorkspacePlan> {
  const plan = await preflight(c.runner, path, { includeUntracked: flags.includeUntracked === true });
  const note = flags.dryRun ? undefined : untrackedNotice(plan);
  if (note) c.err.write(c.style.dim(note));
  return plan;
}

/** Ships the plan into the VM and says what landed where. */
export async function shipInto(
  c: CliContext,
  vm: string,
  info: VmSessionInfo,
  plan: WorkspacePlan,
  force: boolean,
  signal?: AbortSignal,
): Promise<void> {
  const n = await shipWorkspace(c.runner, c.client, plan, { vm, info, force, signal });
  c.err.write(c.style.dim(`workspace: ${plural(n, 'file')} from ${plan.root} in ${vm}:${GUEST_REPO}\n`));
  c.err.write(
    `warning: ${vm}:${GUEST_REPO} has the files without .git (git history is not shipped yet): git status and git log do not work there\n`,
  );
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  const ws = vm.command('workspace').description('ship a git checkout into a VM, bring its changes back');
  ws.command('prepare')
    .description(`ship a git checkout's tracked files into a running VM at ${GUEST_REPO}`)
    .argument('<vm>', 'VM name or id')
    .argument('<path>', 'a directory inside a git work tree')
    .option('--include-untracked', 'also ship untracked files that git does not ignore')
    .option('--dry-run', 'print the files that would ship and create nothing')
    .option('--force', `replace what the VM already has at ${GUEST_REPO}`)
    .addHelpText(
      'after',
      '\nExamples:\n  banger vm workspace prepare dev .\n  banger vm workspace prepare dev ~/src/app --dry-run',
    )
    .action(
      act(async (ref: string, path: string, o: WorkspaceFlags & { force?: boolean }) => {
        const c = ctx();
        const plan = await planWorkspace(c, path, o);
        if (o.dryRun) return dryRunResult(plan);
        const info = await c.client.call('vm.ssh_info', { ref });
        await shipInto(c, ref, info, plan, o.force === true);
        return {};
      }),
    );
  registerExport(ws, ctx, act);
  ws.commands.forEach((cmd) => cmd.exitOverride());
}
