import type { VmSessionInfo } from '../../api/methods.js';
import { cancelled, operationFailed } from '../../errors.js';
import { sshArgv } from '../../ssh/argv.js';
import { sshFailure } from '../../ssh/failure.js';
import { shellJoin } from '../../ssh/quote.js';
import type { CommandRunner } from '../../system/runner.js';
import type { DaemonClient } from '../client.js';

/*
 * Runs a command in a VM, no stdin, and hands its stdout to a sink as it
 * comes, through ssh (images with sshd) or the agent exec (images without).
 * What a guest writes is untrusted: more than `limit` bytes stops the command
 * and fails.
 */

/** The guest's stderr kept for an error message. */
const STDERR_KEEP = 8 * 1024;

export interface GuestCapture {
  code: number;
  stderr: string;
  bytes: number;
}

export interface CaptureOptions {
  vm: string;
  info: VmSessionInfo;
  argv: string[];
  /** Receives stdout chunks in order; awaited (backpressure). */
  sink: (chunk: Buffer) => Promise<void>;
  limit: number;
  /** What the output is, for the too-big error ("the patch"). */
  what: string;
  signal?: AbortSignal | undefined;
}

function tooBig(o: CaptureOptions): Error {
  return operationFailed(`${o.what} from VM "${o.vm}" is larger than ${o.limit} bytes: stopped`);
}

export async function captureFromGuest(
  runner: CommandRunner,
  client: DaemonClient,
  o: CaptureOptions,
): Promise<GuestCapture> {
  return o.info.has_sshd ? viaSsh(runner, o) : viaAgent(client, o);
}

async function viaSsh(runner: CommandRunner, o: CaptureOptions): Promise<GuestCapture> {
  const argv = sshArgv('ssh', o.info, { tty: false, batch: true, remoteCommand: shellJoin(o.argv) });
  const p = runner.stream(argv, o.signal ? { signal: o.signal } : {});
  let bytes = 0;
  try {
    for await (const raw of p.stdout as AsyncIterable<Buffer>) {
      bytes += raw.length;
      if (bytes > o.limit) throw tooBig(o);
      await o.sink(raw);
    }
  } catch (e) {
    p.kill();
    await p.done.catch(() => undefined);
    throw o.signal?.aborted ? cancelled() : e;
  }
  const r = await p.done;
  if (r.code === 255) throw await sshFailure(runner, o.info);
  return { code: r.code, stderr: r.stderr.slice(-STDERR_KEEP), bytes };
}

async function viaAgent(client: DaemonClient, o: CaptureOptions): Promise<GuestCapture> {
  let stderr = '';
  let bytes = 0;
  let failure: Error | undefined;
  const call = client.stream(
    'vm.exec',
    { ref: o.vm, argv: o.argv, env: {}, tty: false },
    {
      onFrame: async (f) => {
        if (failure) return;
        if ('stderr' in f) {
          stderr = (stderr + Buffer.from(f.stderr, 'base64').toString('utf8')).slice(-STDERR_KEEP);
          return;
        }
        const chunk = Buffer.from(f.stdout, 'base64');
        bytes += chunk.length;
        try {
          if (bytes > o.limit) throw tooBig(o);
          await o.sink(chunk);
        } catch (e) {
          failure = e as Error;
          call.close();
        }
      },
    },
  );
  const onAbort = (): void => call.close();
  o.signal?.addEventListener('abort', onAbort);
  try {
    await call.send({ eof: true }).catch(() => undefined);
    const r = await call.result;
    if (failure) throw failure;
    return { code: r.exit_code ?? 128 + (r.signal ?? 0), stderr, bytes };
  } catch (e) {
    if (failure) throw failure;
    throw o.signal?.aborted ? cancelled() : e;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}
