import type { DaemonStatus } from '../../api/methods.js';
import type { Routes } from '../server.js';

export interface DaemonRouteDeps {
  pid: number;
  version: string;
  socket: string;
  stateDir: string;
  /** When the daemon started (ms since the epoch). */
  started: number;
  /** The requests the server is serving now, by op id. */
  inflight: ReadonlyMap<string, { method: string; started: number }>;
  /** Stops the daemon; called shortly after daemon.stop answers. */
  shutdown: (why: string) => Promise<void>;
  /** The TCP listener's bearer token (daemon/api-token.ts). */
  apiToken: { readonly path: string; get(): Promise<string>; rotate(): Promise<string> };
}

/** daemon.*: status, stop, the operations in flight, the API token. */
export function daemonRoutes(d: DaemonRouteDeps): Routes<'daemon'> {
  return {
    'daemon.status': (): DaemonStatus => ({
      pid: d.pid,
      version: d.version,
      uptime_s: Math.round((Date.now() - d.started) / 1000),
      socket: d.socket,
      state_dir: d.stateDir,
      // Not counting the status request itself.
      operations: Math.max(0, d.inflight.size - 1),
    }),
    'daemon.stop': () => {
      setTimeout(() => void d.shutdown('daemon.stop'), 50);
      return { stopping: true };
    },
    'daemon.operations.list': () =>
      [...d.inflight.entries()].map(([id, o]) => ({
        op_id: id,
        method: o.method,
        running_s: Math.round((Date.now() - o.started) / 1000),
      })),
    'daemon.api_token': async (p) => ({
      token: p.rotate === true ? await d.apiToken.rotate() : await d.apiToken.get(),
      path: d.apiToken.path,
    }),
  };
}
