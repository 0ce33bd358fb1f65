import type { Duplex, Readable } from 'node:stream';
import type { FramedMethodName, PtyMethodName } from '../api/methods.js';
import { HEADER_PROC_ID } from '../api/protocol.js';
import { NodeRunner } from '../system/node-runner.js';
import { Paths } from '../system/paths.js';
import { bangerVersion } from '../version.js';
import { DaemonClient, RemoteError } from './client.js';
import { sdkExport, sdkPrepare, type SdkExportOptions, type SdkPrepareOptions } from './sdk-workspace.js';

/*
 * The daemon client as the CLI builds it (same paths, same auto-start and
 * version swap), for other programs in this package: @banger/sdk's transport
 * (packages/sdk/src/transport.ts) loads this module.
 */

export function daemonClient(env: NodeJS.ProcessEnv = process.env): DaemonClient {
  const uid = process.getuid?.() ?? 0;
  return new DaemonClient(new Paths(env, uid), new NodeRunner(), bangerVersion());
}

/** A daemon error as plain fields (the SDK has its own error classes). */
export interface PlainError {
  code: string;
  message: string;
  hint?: string;
}

/** One unary call by method name; errors from the daemon become {code, message, hint}. */
export function sdkTransport(env: NodeJS.ProcessEnv = process.env): {
  call(method: string, params: unknown, opts: { signal?: AbortSignal }): Promise<unknown>;
  workspacePrepare(ref: string, path: string, opts: SdkPrepareOptions): Promise<unknown>;
  workspaceExport(ref: string, opts: SdkExportOptions): Promise<unknown>;
  frames(method: string, params: unknown, opts: { signal?: AbortSignal }): Promise<Readable>;
  pty(method: string, params: unknown, opts: { signal?: AbortSignal }): Promise<{ socket: Duplex; procId: string }>;
} {
  const client = daemonClient(env);
  return {
    call: (method, params, opts) =>
      plainErrors(() =>
        // The contract's table types each method; the SDK calls by name and carries its own types.
        (client.call as (m: string, p: unknown, o: { signal?: AbortSignal }) => Promise<unknown>)(
          method,
          params,
          opts.signal ? { signal: opts.signal } : {},
        ),
      ),
    workspacePrepare: (ref, path, opts) => plainErrors(() => sdkPrepare(client, env, ref, path, opts)),
    workspaceExport: (ref, opts) => plainErrors(() => sdkExport(client, env, ref, opts)),
    // The SDK names its methods by string and checks its params itself; the daemon validates them again.
    frames: (method, params, opts) =>
      plainErrors(() => client.framed(method as FramedMethodName, params as never, opts.signal)),
    pty: (method, params, opts) =>
      plainErrors(async () => {
        const r = await client.pty(method as PtyMethodName, params as never, opts.signal);
        return { socket: r.socket, procId: String(r.headers[HEADER_PROC_ID] ?? '') };
      }),
  };
}

/** Errors with a code (the daemon's, or the CLI's own AppErrors) as {banger: {code, message, hint}}. */
async function plainErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof RemoteError || (e instanceof Error && 'code' in e && typeof e.code === 'string')) {
      const a = e as Error & { code: string; hint?: string };
      const plain: PlainError = { code: a.code, message: a.message, ...(a.hint ? { hint: a.hint } : {}) };
      throw Object.assign(new Error(a.message), { banger: plain });
    }
    throw e;
  }
}
