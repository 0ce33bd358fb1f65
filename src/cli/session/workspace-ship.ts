import type { VmSessionInfo } from '../../api/methods.js';
import { AppError, cancelled, precondition } from '../../errors.js';
import { sshArgv } from '../../ssh/argv.js';
import { sshFailure } from '../../ssh/failure.js';
import { shellJoin } from '../../ssh/quote.js';
import type { CommandRunner } from '../../system/runner.js';
import { coalesce } from '../../workspace/coalesce.js';
import { packFiles } from '../../workspace/pack.js';
import type { WorkspacePlan } from '../../workspace/preflight.js';
import type { DaemonClient } from '../client.js';

/*
 * Ships a workspace's files into a running VM: a tar stream, made as it is
 * sent, into `tar -x` in the guest, over ssh's stdin (images with sshd) or the
 * agent exec's stdin (images without). No copy of the tree on the host.
 */

/** Where the workspace lands in the guest. */
export const GUEST_REPO = '/root/repo';
/** The guest script's exit status when the target holds files and --force was not given. */
const EXIT_NOT_EMPTY = 3;
/** Bytes of tar per agent stdin frame (the frame schema takes 64 KiB of base64). */
const FRAME_BYTES = 32 * 1024;
/** The guest's stderr kept for an error message. */
const STDERR_KEEP = 8 * 1024;

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
  /** Ctrl-C: stops the transfer (the error is `cancelled`). */
  signal?: AbortSignal | undefined;
}

/** Ships plan.files into target.vm:/root/repo; resolves with the number of entries shipped. */
export async function shipWorkspace(
  runner: CommandRunner,
  client: DaemonClient,
  plan: WorkspacePlan,
  t: ShipTarget,
): Promise<number> {
  const pack = packFiles(plan.root, plan.files);
  const argv = unpackArgv(GUEST_REPO, t.force);
  try {
    if (t.info.has_sshd) {
      const ssh = sshArgv('ssh', t.info, { tty: false, batch: true, remoteCommand: shellJoin(argv) });
      const r = await runner.run(ssh, { stdin: coalesce(pack.bytes), ...(t.signal ? { signal: t.signal } : {}) });
      if (r.code === 255) throw await sshFailure(runner, t.info);
      const failed = unpackFailure(t.vm, GUEST_REPO, r.code, r.stderr);
      if (failed) throw failed;
    } else {
      const code = await throughAgent(client, t.vm, argv, coalesce(pack.bytes), t.signal);
      const failed = unpackFailure(t.vm, GUEST_REPO, code.code, code.stderr);
      if (failed) throw failed;
    }
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
  tar: AsyncIterable<Uint8Array>,
  signal: AbortSignal | undefined,
): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const call = client.stream(
    'vm.exec',
    { ref: vm, argv, env: {}, tty: false },
    {
      onFrame: (f) => {
        const text = Buffer.from('stderr' in f ? f.stderr : f.stdout, 'base64').toString('utf8');
        stderr = (stderr + text).slice(-STDERR_KEEP);
      },
    },
  );
  let stop = false;
  const pumping = (async (): Promise<void> => {
    for await (const raw of tar) {
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
    return { code: r.exit_code ?? 128 + (r.signal ?? 0), stderr };
  } catch (e) {
    throw signal?.aborted ? cancelled() : e;
  } finally {
    stop = true;
    signal?.removeEventListener('abort', onAbort);
  }
}
