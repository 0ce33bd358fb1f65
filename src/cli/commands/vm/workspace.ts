import type { Command } from 'commander';
import type { VmSessionInfo } from '../../../api/methods.js';
import { withEnv } from '../../../ssh/env.js';
import { shellJoin, shellQuote } from '../../../ssh/quote.js';
import { DEFAULT_DEPTH, parseDepth } from '../../../workspace/gitmeta.js';
import { resolveHistory, treeFiles, type History } from '../../../workspace/githost.js';
import { preflight, type WorkspacePlan } from '../../../workspace/preflight.js';
import type { Act, CliContext, CommandResult } from '../../context.js';
import { GUEST_REPO, shipWorkspace, type ShipResult } from '../../session/workspace-ship.js';
import { registerExport } from './workspace-export.js';

/* Workspaces on the CLI: `vm workspace prepare`, and the steps `vm run PATH` takes. */

export interface WorkspaceFlags {
  includeUntracked?: boolean;
  dryRun?: boolean;
  depth?: string;
  from?: string;
  branch?: string;
}

/** A plan with the history that ships with it (none in a repo without commits). */
export type Workspace = WorkspacePlan & { history?: History | undefined };

/** The workspace flags `vm run` and `vm workspace prepare` share. */
export function addWorkspaceFlags(cmd: Command, prefix = ''): Command {
  return cmd
    .option('--include-untracked', `${prefix}also ship untracked files that git does not ignore`)
    .option('--dry-run', `${prefix}print the files that would ship and create nothing`)
    .option('--depth <n>', `${prefix}commits of history to ship (default ${DEFAULT_DEPTH})`)
    .option('--from <ref>', `${prefix}the commit to check out in the guest (default HEAD: the work tree as it is)`)
    .option('--branch <name>', `${prefix}the guest's branch name (default: the branch --from names)`);
}

function historyLine(h: History | undefined): string {
  if (!h) return 'no git history';
  const at = h.branch ? `branch ${h.branch}` : 'detached HEAD';
  return `git history: ${plural(h.commits, 'commit')} up to ${h.commit.slice(0, 12)} on ${at}`;
}

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

/** The one-line notice when untracked files were left out; undefined when none were. */
export function untrackedNotice(plan: WorkspacePlan): string | undefined {
  if (plan.skippedUntracked === 0) return undefined;
  return `note: ${plural(plan.skippedUntracked, 'untracked file')} not shipped (--include-untracked ships them)\n`;
}

/** --dry-run: the exact file list on stdout (one per line), what it is on stderr; nothing is created. */
export function dryRunResult(plan: Workspace): CommandResult {
  const head = plan.head ? plan.head.slice(0, 12) : 'no commits';
  const untracked = plan.includeUntracked
    ? 'untracked files included'
    : `untracked files not included${plan.skippedUntracked ? ` (${plan.skippedUntracked} left out)` : ''}`;
  return {
    text: plan.files.map((f) => `${f}\n`).join(''),
    err: `dry run: ${plural(plan.files.length, 'file')} from ${plan.root} (${head}) would ship to ${GUEST_REPO}; ${untracked}; ${historyLine(plan.history)}; nothing created\n`,
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
export async function planWorkspace(c: CliContext, path: string, flags: WorkspaceFlags): Promise<Workspace> {
  const depth = parseDepth(flags.depth);
  const plan = await preflight(c.runner, path, { includeUntracked: flags.includeUntracked === true });
  const note = flags.dryRun ? undefined : untrackedNotice(plan);
  if (note) c.err.write(c.style.dim(note));
  if (plan.head === null && flags.from === undefined && flags.branch === undefined) return plan;
  const history = await resolveHistory(c.runner, plan.root, plan.head, {
    from: flags.from,
    branch: flags.branch,
    depth,
  });
  if (!history.checkout) return { ...plan, history };
  // --from another commit: its tree is what the guest checks out (plus the untracked files when asked).
  const files = [...new Set([...(await treeFiles(c.runner, plan.root, history.commit)), ...plan.untracked])].sort(
    (a, b) => (a < b ? -1 : a > b ? 1 : 0),
  );
  return { ...plan, files, history };
}

/** Ships the plan into the VM and says what landed where. */
export async function shipInto(
  c: CliContext,
  vm: string,
  info: VmSessionInfo,
  plan: Workspace,
  force: boolean,
  signal?: AbortSignal,
): Promise<ShipResult> {
  const r = await shipWorkspace(c.runner, c.client, plan, { vm, info, force, signal, history: plan.history });
  await c.client.call('vm.workspace_set', {
    ref: vm,
    guest_path: GUEST_REPO,
    host_path: plan.root,
    head: r.git && plan.history ? plan.history.commit : null,
  });
  const files = plan.history?.checkout ? plural(plan.files.length, 'file') : plural(r.files, 'file');
  c.err.write(
    c.style.dim(
      `workspace: ${files} from ${plan.root} in ${vm}:${GUEST_REPO}${r.git ? `; ${historyLine(plan.history)}` : ''}\n`,
    ),
  );
  if (!r.git)
    c.err.write(
      plan.history
        ? `warning: ${vm} has no git: ${vm}:${GUEST_REPO} has the files without .git (git status and git log do not work there)\n`
        : `warning: ${plan.root} has no commits: ${vm}:${GUEST_REPO} has the files without .git\n`,
    );
  return r;
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  const ws = vm.command('workspace').description('ship a git checkout into a VM, bring its changes back');
  addWorkspaceFlags(
    ws
      .command('prepare')
      .description(`ship a git checkout (tracked files and recent history) into a running VM at ${GUEST_REPO}`)
      .argument('<vm>', 'VM name or id')
      .argument('<path>', 'a directory inside a git work tree'),
  )
    .option('--force', `replace what the VM already has at ${GUEST_REPO}, uncommitted changes there included`)
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
