import { Writable } from 'node:stream';
import type { CliContext } from './context.js';
import { planWorkspace, shipInto, type WorkspaceFlags } from './commands/vm/workspace.js';
import { exportWorkspace } from './commands/vm/workspace-export.js';
import { makeStyle } from './render/style.js';
import { GUEST_REPO } from './session/workspace-ship.js';
import type { DaemonClient } from './client.js';
import { NodeRunner } from '../system/node-runner.js';
import { Paths } from '../system/paths.js';
import { bangerVersion } from '../version.js';

/*
 * Workspaces for @banger/sdk (packages/sdk, through connect.ts's sdkTransport): the very steps of
 * `banger vm run PATH` / `vm workspace prepare` (host preflight, git history, ship over ssh or the
 * agent, vm.workspace_set) and `vm workspace export`, run in the SDK's process with the CLI's code.
 */

export interface SdkPrepareOptions {
  force?: boolean;
  includeUntracked?: boolean;
  depth?: number;
  from?: string;
  branch?: string;
  signal?: AbortSignal;
}

export interface SdkPrepareResult {
  guest_path: string;
  host_path: string;
  head: string | null;
  files: number;
  git: boolean;
  /** What the CLI would print to stderr (notices, warnings), line by line. */
  notes: string[];
}

export interface SdkExportOptions {
  baseCommit?: string;
  guestPath?: string;
  /** Write the patch to this host file (atomically) instead of returning it. */
  output?: string;
}

/** Collects what is written to it, up to `max` bytes (more is an error: a guest's output is bounded). */
class Collect extends Writable {
  readonly parts: Buffer[] = [];
  private n = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.n += chunk.length;
    if (this.n > this.max) return cb(new Error(`more than ${this.max} bytes`));
    this.parts.push(Buffer.from(chunk));
    cb();
  }
  text(): string {
    return Buffer.concat(this.parts).toString('utf8');
  }
}

function context(client: DaemonClient, env: NodeJS.ProcessEnv, out: Writable, err: Writable): CliContext {
  const uid = process.getuid?.() ?? 0;
  return {
    paths: new Paths(env, uid),
    client,
    runner: new NodeRunner(),
    out,
    err,
    style: makeStyle(false, { NO_COLOR: '1' }),
    stdinIsTty: false,
    version: bangerVersion(),
    env,
  };
}

const lines = (s: string): string[] => s.split('\n').filter((l) => l.trim() !== '');

export async function sdkPrepare(
  client: DaemonClient,
  env: NodeJS.ProcessEnv,
  ref: string,
  path: string,
  o: SdkPrepareOptions,
): Promise<SdkPrepareResult> {
  const err = new Collect(1 << 20);
  const c = context(client, env, new Collect(1 << 20), err);
  const flags: WorkspaceFlags = { includeUntracked: o.includeUntracked === true };
  if (o.depth !== undefined) flags.depth = String(o.depth);
  if (o.from !== undefined) flags.from = o.from;
  if (o.branch !== undefined) flags.branch = o.branch;
  const plan = await planWorkspace(c, path, flags);
  const info = await client.call('vm.ssh_info', { ref }, o.signal ? { signal: o.signal } : {});
  const r = await shipInto(c, ref, info, plan, o.force === true, o.signal);
  return {
    guest_path: GUEST_REPO,
    host_path: plan.root,
    head: r.git && plan.history ? plan.history.commit : null,
    files: plan.history?.checkout ? plan.files.length : r.files,
    git: r.git,
    notes: lines(err.text()),
  };
}

/** The patch (or, with baseCommit, format-patch output); empty when the guest has no changes. */
export async function sdkExport(
  client: DaemonClient,
  env: NodeJS.ProcessEnv,
  ref: string,
  o: SdkExportOptions,
): Promise<{ patch: Buffer; notes: string[] }> {
  const out = new Collect(Number.MAX_SAFE_INTEGER); // exportWorkspace bounds the patch (PATCH_LIMIT)
  const err = new Collect(1 << 20);
  const r = await exportWorkspace(context(client, env, out, err), ref, {
    ...(o.baseCommit === undefined ? {} : { baseCommit: o.baseCommit }),
    ...(o.guestPath === undefined ? {} : { guestPath: o.guestPath }),
    ...(o.output === undefined ? {} : { output: o.output }),
  });
  return { patch: Buffer.concat(out.parts), notes: lines(`${err.text()}${r.err ?? ''}`) };
}
