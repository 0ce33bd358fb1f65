import { mkdir } from 'node:fs/promises';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type {
  DaemonStatus,
  FramedMethodName,
  OperationView,
  PtyMethodName,
  Result,
  StreamIn,
  StreamMethodName,
  StreamOut,
  UnaryMethodName,
  WireParams,
} from '../api/methods.js';
import {
  callMethod,
  openFramed,
  openPty,
  openStream,
  RemoteError,
  type CallOptions,
  type StreamCall,
  type StreamOptions,
} from '../api/http-client.js';
import { AppError } from '../errors.js';
import { checkRuntimeDir } from '../system/dirs.js';
import { checkConfigBeforeStart, exitedAtStart, logSize } from './daemon-start.js';
import { packageRoot, type Paths } from '../system/paths.js';
import { processExists } from '../system/process.js';
import { StateLock } from '../system/statelock.js';
import type { CommandRunner } from '../system/runner.js';

export { RemoteError, type CallOptions };

const START_TIMEOUT_MS = 20_000;

function isNoDaemon(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

/** Typed client for bangerd; starts the daemon on first use and replaces one of another version. */
export class DaemonClient {
  constructor(
    private readonly paths: Paths,
    private readonly runner: CommandRunner,
    private readonly version: string,
  ) {}

  /** Calls `method`; its params and result types come from api/methods.ts. */
  async call<M extends UnaryMethodName>(method: M, params: WireParams<M>, opts: CallOptions = {}): Promise<Result<M>> {
    try {
      return await this.callOnce(method, params, opts);
    } catch (e) {
      if (isNoDaemon(e)) {
        await this.startDaemon();
        return this.callOnce(method, params, opts);
      }
      if (e instanceof RemoteError && e.code === 'bad_version') {
        await this.replaceDaemon();
        return this.callOnce(method, params, opts);
      }
      throw e;
    }
  }

  /**
   * Opens a streaming method (api/methods.ts `StreamMethod`): frames both ways, then its result.
   * It does not start the daemon: callers make a unary call first (vm.ssh_info for vm.exec).
   */
  stream<M extends StreamMethodName>(
    method: M,
    params: WireParams<M>,
    opts: StreamOptions<StreamOut<M>>,
  ): StreamCall<StreamIn<M>, Result<M>> {
    // Never talk to a socket in a runtime dir someone else could have planted (SPEC §2).
    checkRuntimeDir(this.paths.runtimeDir, process.getuid?.() ?? 0);
    return openStream({ socketPath: this.paths.socket }, this.version, method, params, opts);
  }

  /** Opens a framed method (proc.stream): its binary frames body. Like `stream`, it does not start the daemon. */
  framed(
    method: FramedMethodName,
    params: WireParams<FramedMethodName>,
    signal?: AbortSignal,
  ): Promise<IncomingMessage> {
    checkRuntimeDir(this.paths.runtimeDir, process.getuid?.() ?? 0);
    return openFramed({ socketPath: this.paths.socket }, this.version, method, params, signal);
  }

  /** Opens a pty method (proc.pty): the raw socket after the 101. Like `stream`, it does not start the daemon. */
  pty(
    method: PtyMethodName,
    params: WireParams<PtyMethodName>,
    signal?: AbortSignal,
  ): Promise<{ socket: Socket; headers: IncomingHttpHeaders }> {
    checkRuntimeDir(this.paths.runtimeDir, process.getuid?.() ?? 0);
    return openPty({ socketPath: this.paths.socket }, this.version, method, params, signal);
  }

  /** Calls without auto-starting (for `daemon status` / `daemon stop`). */
  async callNoStart<M extends UnaryMethodName>(method: M, params: WireParams<M>): Promise<Result<M> | undefined> {
    try {
      return await this.callOnce(method, params, {});
    } catch (e) {
      if (isNoDaemon(e)) return undefined;
      throw e;
    }
  }

  private async callOnce<M extends UnaryMethodName>(
    method: M,
    params: WireParams<M>,
    opts: CallOptions,
  ): Promise<Result<M>> {
    // Never talk to a socket in a runtime dir someone else could have planted (SPEC §2).
    checkRuntimeDir(this.paths.runtimeDir, process.getuid?.() ?? 0);
    return (await callMethod({ socketPath: this.paths.socket }, this.version, method, params, opts)) as Result<M>;
  }

  private async startDaemon(): Promise<void> {
    // A bad config is named here, not left to the daemon log behind a start timeout.
    await checkConfigBeforeStart(this.paths.configFile);
    await mkdir(this.paths.stateDir, { recursive: true, mode: 0o700 });
    const bangerd = join(packageRoot(), 'bin', 'bangerd.js');
    const logOffset = await logSize(this.paths.daemonLog);
    // A small young generation keeps an idle daemon's RSS low (docs/BENCHMARKS.md B6); it allocates little.
    const pid = await this.runner.spawnDetached([process.execPath, '--max-semi-space-size=8', bangerd], {
      logFile: this.paths.daemonLog,
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    let raceLost = false;
    while (Date.now() < deadline) {
      try {
        await this.callOnce('daemon.status', {}, {});
        return;
      } catch (e) {
        if (!isNoDaemon(e)) throw e;
      }
      // A daemon that died while starting says why in its log: show that now, not after the timeout.
      // Unless another daemon holds the state dir: ours lost a start race (another CLI started one at
      // the same moment) and the winner's socket appears shortly.
      if (!raceLost) {
        const died = await exitedAtStart(pid, this.paths.daemonLog, logOffset);
        if (died && (await StateLock.holder(this.paths.stateLock)) === undefined) throw died;
        raceLost = died !== undefined;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new AppError('operation_failed', `bangerd did not start within ${START_TIMEOUT_MS / 1000} s`, {
      hint: `see ${this.paths.daemonLog}`,
    });
  }

  /** SPEC §2: restart a daemon of another version only when it has no operation in flight. */
  private async replaceDaemon(): Promise<void> {
    const st = await this.callOnce('daemon.status', {}, {});
    let ops: OperationView[] | undefined;
    if (st.operations > 0) {
      // Naming them is best effort: a daemon older than this listing's version exemption refuses it.
      ops = await this.callOnce('daemon.operations.list', {}, {}).catch(() => undefined);
    }
    const refusal = versionSwapRefusal(st, ops, this.version);
    if (refusal) throw refusal;
    await this.callOnce('daemon.stop', {}, {});
    // Until the old process has exited it still holds the state-dir lock, and a new daemon would refuse to run.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && processExists(st.pid)) await new Promise((r) => setTimeout(r, 50));
    await this.startDaemon();
  }
}

/**
 * SPEC §2, the version swap decision: undefined when the daemon of another version
 * may be restarted (nothing in flight), else the error that says why not, naming
 * the running operations (`ops`, from daemon.operations.list, when it could be read).
 */
export function versionSwapRefusal(
  st: DaemonStatus,
  ops: readonly OperationView[] | undefined,
  cliVersion: string,
): AppError | undefined {
  // The listing includes the client's own daemon.* requests (status, the listing itself): those are not work.
  const running = (ops ?? []).filter((o) => !o.method.startsWith('daemon.'));
  const busy = ops === undefined ? st.operations > 0 : running.length > 0;
  if (!busy) return undefined;
  const what =
    running.length > 0
      ? running.map((o) => `${o.method} (${o.op_id}, ${o.running_s}s)`).join(', ')
      : `${st.operations} operation(s)`;
  return new AppError(
    'bad_version',
    `the running daemon (pid ${st.pid}) is version ${st.version}, this CLI is ${cliVersion}; not restarting it while it is busy with ${what}`,
    {
      hint: 'retry when they finish (`banger daemon status` shows what is in flight): the CLI then restarts the daemon with its own version; `banger daemon stop` restarts it now but cancels them',
    },
  );
}
