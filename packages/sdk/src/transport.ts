import { dirname, join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BangerError } from './errors.js';

/*
 * The SDK's one seam to the daemon: a unary call by method name. Everything
 * else in the SDK is written against `Transport`. Today it is the CLI's own
 * daemon client (socket discovery, auto-start, version swap: src/cli/connect.ts
 * of this repo, loaded from its build); swapping the wire means changing only
 * this file.
 */

export interface CallOptions {
  signal?: AbortSignal | undefined;
}

export interface Transport {
  call(method: string, params: unknown, opts: CallOptions): Promise<unknown>;
  /**
   * Ships a host git checkout into a VM as `banger vm run PATH` does (host-side work: the
   * default transport runs the CLI's code in this process). Absent: workspaces are unsupported.
   */
  workspacePrepare?(ref: string, path: string, opts: Record<string, unknown>): Promise<unknown>;
  /** `banger vm workspace export`: the guest's changes as a patch. */
  workspaceExport?(ref: string, opts: Record<string, unknown>): Promise<unknown>;
  /**
   * A framed method (proc.stream): its response body of binary frames (generated/binframes.ts).
   * Aborting the signal closes it. Absent: process handles long-poll proc.read instead.
   */
  frames?(method: string, params: unknown, opts: CallOptions): Promise<Readable>;
  /** A pty method (proc.pty): the raw terminal connection after the daemon's 101, and the process id it named. */
  pty?(method: string, params: unknown, opts: CallOptions): Promise<{ socket: Duplex; procId: string }>;
}

interface ConnectModule {
  sdkTransport(env?: NodeJS.ProcessEnv): Required<Transport>;
}

/** dist/src/cli/connect.js of the banger package this SDK sits in (packages/sdk/dist → the repo root). */
function cliConnectModule(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return pathToFileURL(join(here, '..', '..', '..', 'dist', 'src', 'cli', 'connect.js')).href;
}

/** The default transport: the CLI's daemon client; daemon errors become BangerError. */
export async function defaultTransport(env?: NodeJS.ProcessEnv): Promise<Transport> {
  let mod: ConnectModule;
  try {
    mod = (await import(cliConnectModule())) as ConnectModule;
  } catch (e) {
    throw new BangerError(
      'operation_failed',
      `cannot load banger's daemon client: ${e instanceof Error ? e.message : String(e)}`,
      'build banger first (`npm ci && npm run build` at the repo root)',
    );
  }
  const inner = mod.sdkTransport(env);
  return {
    call: (method, params, opts) => typed(() => inner.call(method, params, opts)),
    workspacePrepare: (ref, path, opts) => typed(() => inner.workspacePrepare(ref, path, opts)),
    workspaceExport: (ref, opts) => typed(() => inner.workspaceExport(ref, opts)),
    frames: (method, params, opts) => typed(() => inner.frames(method, params, opts)),
    pty: (method, params, opts) => typed(() => inner.pty(method, params, opts)),
  };
}

async function typed<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const plain = (e as { banger?: { code: string; message: string; hint?: string } }).banger;
    if (plain) throw new BangerError(plain.code, plain.message, plain.hint);
    throw e;
  }
}
