import type { VmSessionInfo } from '../../api/methods.js';
import { AppError, cancelled, precondition } from '../../errors.js';
import { sshArgv } from '../../ssh/argv.js';
import { sshFailure } from '../../ssh/failure.js';
import { shellJoin } from '../../ssh/quote.js';
import type { CommandRunner } from '../../system/runner.js';
import { coalesce } from '../../workspace/coalesce.js';
import type { History } from '../../workspace/githost.js';
import { streamPack } from '../../workspace/githost.js';
import { packFiles, type ExtraFile } from '../../workspace/pack.js';
import type { WorkspacePlan } from '../../workspace/preflight.js';
import type { DaemonClient } from '../client.js';
import { cleanupArgv, finishArgv, parseProbe, probeArgv, receivePackArgv, type GuestState } from './workspace-guest.js';

/*
 * Ships a workspace into a running VM over ssh's stdin (images with sshd) or
 * the agent exec's stdin (images without): the history as a pack streamed from
 * `git pack-objects` into `git index-pack --stdin`, then the files as a tar
 * made as it is sent into `tar -x`. No copy of the tree on the host.
 */

/** Where the workspace lands in the guest. */
export const GUEST_REPO = '/root/repo';
/** The guest script's exit status when the target holds files and --force was not given. */
const EXIT_NOT_EMPTY = 3;
/** Bytes of tar per agent stdin frame (the frame schema takes 64 KiB of base64). */
const FRAME_BYTES = 32 * 1024;
/** The guest's stderr kept for an error message. */
const STDERR_KEEP = 8 * 1024;
/** The guest's stdout kept (probes print a few lines). */
const STDOUT_KEEP = 64 * 1024;

/**
 * argv of the guest side: refuse a non-empty target unless forced, else
 * replace it with what arrives on stdin. Paths are positional parameters,
 * never spliced into the script.
 */
export function unpackArgv(dir: string, force: boolean): string[] {
  const script = [
    'set -e',
    `if [ "$2" != force ] && [ -d "$1" ] && [ -n "$(ls -A "$1")" ]; then exit ${EXIT_NOT_EMPTY}; fi`,
    'rm -rf -- "$1"',
    'mkdir -p -- "$1"',
    'cd -- "$1"',
    'tar -x -f -',
  ].join('\n');
  return ['sh', '-c', script, 'sh', dir, force ? 'force' : 'keep'];
}

/** What the guest's exit status means; undefined when it succeeded. */
export function unpackFailure(vm: string, dir: string, code: number, stderr: string): AppError | undefined {
  if (code === 0) return undefined;
  if (code === EXIT_NOT_EMPTY)
    return precondition(
      `VM ${vm} already has files at ${dir}`,
      `--force replaces them (changes made there are lost); or look first: banger vm ssh ${vm} -- ls -A ${dir}`,
    );
  const tail = stderr.trim().split('\n').slice(-6).join('\n');
  return new AppError('operation_failed', `unpacking the workspace into ${vm}:${dir} failed (exit ${code})`, {
    hint: tail ? `the guest said:\n${tail}` : `see banger vm logs ${vm}`,
  });
}

export interface ShipTarget {
  vm: string;
  info: VmSessionInfo;
  force: boolean;
  /** The history to ship; absent: the files only. */
  history?: History | undefined;
  /** Ctrl-C: stops the transfer (the error is `cancelled`). */
  signal?: AbortSignal | undefined;
}

export interface ShipResult {
  /** Entries of the work-tree tar. */
  files: number;
  /** false: the guest has no git (or there was no history): the files landed without .git. */
  git: boolean;
}

export interface GuestRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv in the guest (ssh when it has sshd, else the agent), stdin streamed from `stdin` when given. */
export async function guestRun(
  runner: CommandRunner,
  client: DaemonClient,
  vm: string,
  info: VmSessionInfo,
  argv: string[],
  stdin?: AsyncIterable<Uint8Array>,
  signal?: AbortSignal,
): Promise<GuestRun> {
  if (info.has_sshd) {
    const ssh = sshArgv('ssh', info, { tty: false, batch: true, remoteCommand: shellJoin(argv) });
    const r = await runner.run(ssh, { ...(stdin ? { stdin } : {}), ...(signal ? { signal } : {}) });
    if (r.code === 255) throw await sshFailure(runner, info);
    return r;
  }
  return throughAgent(client, vm, argv, stdin, signal);
}

/** Where the guest stands (git or not, and what it has at /root/repo). */
export async function probeGuest(
  runner: CommandRunner,
  client: DaemonClient,
  vm: string,
  info: VmSessionInfo,
  signal?: AbortSignal,
): Promise<GuestState> {
  const r = await guestRun(runner, client, vm, info, probeArgv(GUEST_REPO), undefined, signal);
  const st = r.code === 0 ? parseProbe(r.stdout) : undefined;
  if (!st)
    throw new AppError('operation_failed', `could not look at ${vm}:${GUEST_REPO} (exit ${r.code})`, {
      hint: r.stderr.trim()
        ? `the guest said:\n${r.stderr.trim().split('\n').slice(-6).join('\n')}`
        : `see banger vm logs ${vm}`,
    });
  return st;
}

/** The refusal of a re-ship over a tree with changes; undefined when it may go ahead. */
export function reshipRefusal(vm: string, st: GuestState, force: boolean): AppError | undefined {
  if (force) return undefined;
  if (st.target === 'dirty')
    return precondition(
      `VM ${vm} has uncommitted changes at ${GUEST_REPO}`,
      `look at them with \`banger vm exec ${vm} -- git status\`; --force replaces the tree (the changes are lost)`,
    );
  if (st.target === 'files') return unpackFailure(vm, GUEST_REPO, EXIT_NOT_EMPTY, '');
  return undefined;
}

function fail(vm: string, what: string, r: GuestRun): AppError {
  const tail = r.stderr.trim().split('\n').slice(-6).join('\n');
  return new AppError('operation_failed', `${what} in ${vm}:${GUEST_REPO} failed (exit ${r.code})`, {
    hint: tail ? `the guest said:\n${tail}` : `see banger vm logs ${vm}`,
  });
}

/**
 * Ships the plan into target.vm:/root/repo. With git in the guest and a
 * history: the pack into a fresh repository beside the target, then the files
 * with .git/config and .git/shallow, then the swap. Without: the files only.
 */
export async function shipWorkspace(
  runner: CommandRunner,
  client: DaemonClient,
  plan: WorkspacePlan,
  t: ShipTarget,
): Promise<ShipResult> {
  const st = await probeGuest(runner, client, t.vm, t.info, t.signal);
  const refused = reshipRefusal(t.vm, st, t.force);
  if (refused) throw refused;
  const h = t.history;
  if (!st.git && h?.checkout)
    throw precondition(
      `VM ${t.vm} has no git: --from ${h.commit.slice(0, 12)} (not the work tree's HEAD) cannot be checked out there`,
      'leave --from out to ship the work tree as it is, or use an image with git (the default image has it)',
    );
  if (!st.git || !h) return { files: await shipFilesOnly(runner, client, plan, t), git: false };
  const packer = streamPack(runner, plan.root, h);
  try {
    const r = await guestRun(runner, client, t.vm, t.info, receivePackArgv(GUEST_REPO), packer.stdout, t.signal);
    const p = await packer.done;
    if (p.code !== 0)
      throw new AppError('operation_failed', `git pack-objects failed in ${plan.root} (exit ${p.code})`, {
        hint: p.stderr.trim().split('\n').slice(-4).join('\n') || 'run git fsck there',
      });
    if (r.code !== 0) throw fail(t.vm, 'receiving the git history', r);
    const extra: ExtraFile[] = [{ name: '.git/config', content: h.config }];
    if (h.shallow.length > 0) extra.push({ name: '.git/shallow', content: h.shallow.map((c) => `${c}\n`).join('') });
    const tar = packFiles(plan.root, h.checkout ? plan.untracked : plan.files, extra);
    try {
      const argv = finishArgv({
        dir: GUEST_REPO,
        commit: h.commit,
        branch: h.branch,
        checkout: h.checkout,
        identity: h.identity,
      });
      const f = await guestRun(runner, client, t.vm, t.info, argv, coalesce(tar.bytes), t.signal);
      if (f.code !== 0) throw fail(t.vm, 'checking out the workspace', f);
      return { files: (await tar.done) - extra.length, git: true };
    } finally {
      tar.stream.destroy();
    }
  } catch (e) {
    packer.kill();
    await guestRun(runner, client, t.vm, t.info, cleanupArgv(GUEST_REPO)).catch(() => undefined);
    throw e;
  }
}

async function shipFilesOnly(
  runner: CommandRunner,
  client: DaemonClient,
  plan: WorkspacePlan,
  t: ShipTarget,
): Promise<number> {
  const pack = packFiles(plan.root, plan.files);
  try {
    // The probe checked the target (and --force); replace what is there.
    const r = await guestRun(
      runner,
      client,
      t.vm,
      t.info,
      unpackArgv(GUEST_REPO, true),
      coalesce(pack.bytes),
      t.signal,
    );
    const failed = unpackFailure(t.vm, GUEST_REPO, r.code, r.stderr);
    if (failed) throw failed;
    // The guest read everything it was sent; a file the host could not read fails here.
    return await pack.done;
  } finally {
    pack.stream.destroy();
  }
}

async function throughAgent(
  client: DaemonClient,
  vm: string,
  argv: string[],
  input: AsyncIterable<Uint8Array> | undefined,
  signal: AbortSignal | undefined,
): Promise<GuestRun> {
  let stderr = '';
  let stdout = '';
  const call = client.stream(
    'vm.exec',
    { ref: vm, argv, env: {}, tty: false },
    {
      onFrame: (f) => {
        if ('stderr' in f) stderr = (stderr + Buffer.from(f.stderr, 'base64').toString('utf8')).slice(-STDERR_KEEP);
        else stdout = (stdout + Buffer.from(f.stdout, 'base64').toString('utf8')).slice(-STDOUT_KEEP);
      },
    },
  );
  let stop = false;
  const pumping = (async (): Promise<void> => {
    for await (const raw of input ?? []) {
      const chunk = Buffer.from(raw);
      for (let off = 0; off < chunk.length; off += FRAME_BYTES) {
        if (stop) return;
        await call.send({ stdin: chunk.subarray(off, off + FRAME_BYTES).toString('base64') });
      }
    }
    if (!stop) await call.send({ eof: true });
  })();
  // A send failing because the command ended (or the call broke) shows in the result.
  pumping.catch(() => call.close());
  const onAbort = (): void => call.close();
  signal?.addEventListener('abort', onAbort);
  try {
    const r = await call.result;
    return { code: r.exit_code ?? 128 + (r.signal ?? 0), stdout, stderr };
  } catch (e) {
    throw signal?.aborted ? cancelled() : e;
  } finally {
    stop = true;
    signal?.removeEventListener('abort', onAbort);
  }
}
