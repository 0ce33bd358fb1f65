import { access, open, readFile, rm } from 'node:fs/promises';
import { AppError, operationFailed, precondition } from '../../errors.js';
import type { CommandRunner, DetachedOptions } from '../../system/runner.js';
import { realProcessOps, type ProcessOps } from '../../system/process.js';
import type { VmmCapabilities, VmmDriver, VmmHandles, VmmRunState, VmmSpec } from '../driver.js';
import { AGENT_VSOCK_PORT } from '../../agent/vsock.js';
import { FirecrackerApi } from './api.js';
import { firecrackerPlan, type FirecrackerExtra, type FirecrackerLogLevel } from './config.js';
import { checkFirecrackerVersion } from './version.js';

export { realProcessOps, type ProcessOps };

export interface FirecrackerDriverOptions {
  kvmUsable: boolean;
  /** The host tap device for a VM (bridge networking); firecracker has no user-mode network. */
  tapFor?: (spec: VmmSpec) => string | undefined;
  /** A vsock device for a VM (host-side socket and guest CID); none by default. */
  vsockFor?: (spec: VmmSpec) => { udsPath: string; guestCid: number } | undefined;
  /** A metrics file for a VM; none by default (firecracker appends a JSON line every minute). */
  metricsFor?: (spec: VmmSpec) => string | undefined;
  logLevel?: FirecrackerLogLevel;
  /** Per API request. */
  apiTimeoutMs?: number;
  /** How long firecracker may take to answer on its API socket. */
  startTimeoutMs?: number;
  /** How long a SIGTERM stop waits for the guest to halt after Ctrl-Alt-Del. */
  gracefulStopMs?: number;
  /** Starts argv detached and returns its pid; default runner.spawnDetached. Tests start a fake API server here. */
  spawn?: (argv: readonly string[], opts: DetachedOptions) => Promise<number>;
  process?: ProcessOps;
}

const START_TIMEOUT_MS = 10_000;
const GRACEFUL_STOP_MS = 5_000;
const KILL_WAIT_MS = 5_000;
const POLL_MS = 20;

const KVM_HINT = 'set vmm = "qemu" (or "auto") in config.toml; firecracker needs /dev/kvm with VT-x/AMD-V';

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

async function logTail(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trimEnd().split('\n').slice(-10).join('\n');
  } catch {
    return '';
  }
}

/** Creates the file if missing, keeping what it holds: firecracker before 1.14 opens log and metrics paths without creating them. */
async function touch(path: string): Promise<void> {
  await (await open(path, 'a', 0o600)).close();
}

/** Every firecracker VM has its own vsock device, so one guest CID (the first free one) serves all. */
export const GUEST_CID = 3;

/**
 * The agent channel of a VM: firecracker's hybrid vsock, whose host side is a Unix socket
 * at spec.agentSocket (the host connects and sends `CONNECT <port>`, agent/vsock.ts).
 */
function agentVsock(spec: VmmSpec): { udsPath: string; guestCid: number } | undefined {
  return spec.agentSocket === undefined ? undefined : { udsPath: spec.agentSocket, guestCid: GUEST_CID };
}

/** What firecracker offers: raw disks only, a tap (bridge) network only, KVM only. */
export const FIRECRACKER_CAPABILITIES: VmmCapabilities = {
  diskFormats: ['raw'],
  networks: [{ mode: 'bridge' }],
  needsKvm: true,
  controlSocket: {
    suffix: '.sock',
    // Its `--api-sock PATH` argument.
    carriedBy: (argv, path) => argv.some((a, i) => a === path && argv[i - 1] === '--api-sock'),
  },
};

/**
 * Runs VMs under firecracker: the process starts detached with only its API
 * socket, then the VM is configured and booted through the API. The process's
 * stdout is the guest serial console, so it goes to spec.consoleLog, and
 * firecracker's own log is sent to spec.vmmLog through PUT /logger.
 */
export class FirecrackerDriver implements VmmDriver {
  readonly kind = 'firecracker' as const;
  readonly capabilities = FIRECRACKER_CAPABILITIES;
  private readonly proc: ProcessOps;

  constructor(
    private readonly runner: CommandRunner,
    private readonly firecrackerBin: string,
    private readonly opts: FirecrackerDriverOptions,
  ) {
    this.proc = opts.process ?? realProcessOps;
  }

  /** argv of the firecracker process for a VM. */
  argv(spec: VmmSpec): string[] {
    return [this.firecrackerBin, '--api-sock', spec.controlSocket, '--id', spec.name];
  }

  async start(spec: VmmSpec, signal?: AbortSignal, onSpawn?: (h: VmmHandles) => Promise<void>): Promise<VmmHandles> {
    if (!this.opts.kvmUsable)
      throw precondition('firecracker needs hardware virtualization (KVM), which this host does not offer', KVM_HINT);
    const vsock = this.opts.vsockFor?.(spec) ?? agentVsock(spec);
    // The guest agent listens on vsock under firecracker (guest-src/banger-agent/transport.c).
    const booted =
      vsock === undefined ? spec : { ...spec, cmdline: `${spec.cmdline} banger.agent=vsock:${AGENT_VSOCK_PORT}` };
    const extra: FirecrackerExtra = {
      tap: this.opts.tapFor?.(spec),
      vsock,
      logPath: spec.vmmLog,
      logLevel: this.opts.logLevel ?? 'Info',
      metricsPath: this.opts.metricsFor?.(spec),
    };
    // Built before anything starts, so a spec firecracker cannot run fails without side effects.
    const plan = firecrackerPlan(booted, extra);
    // Firecracker refuses to start when its API socket (or the vsock socket) path exists.
    await rm(spec.controlSocket, { force: true });
    if (extra.vsock) await rm(extra.vsock.udsPath, { force: true });
    await touch(spec.vmmLog);
    if (extra.metricsPath !== undefined) await touch(extra.metricsPath);

    const spawn = this.opts.spawn ?? ((argv, o) => this.runner.spawnDetached(argv, o));
    const pid = await spawn(this.argv(spec), { logFile: spec.consoleLog });
    const startTime = await this.proc.startTime(pid);
    const handles: VmmHandles = { pid, startTime: startTime ?? 0, controlSocket: spec.controlSocket };
    const api = new FirecrackerApi(spec.controlSocket, { timeoutMs: this.opts.apiTimeoutMs, signal });
    try {
      if (startTime !== undefined) await onSpawn?.(handles);
      await this.waitForApi(spec, handles, api, signal);
      for (const call of plan) await api.request(call.method, call.path, call.body);
    } catch (e) {
      await this.kill(handles, 'SIGKILL');
      if (e instanceof AppError && e.code !== 'cancelled' && e.hint === undefined) {
        throw new AppError(e.code, `starting VM "${spec.name}" under firecracker: ${e.message}`, {
          detail: e.detail,
          hint: `firecracker's log is ${spec.vmmLog}, its output (the guest console) ${spec.consoleLog}`,
          cause: e,
        });
      }
      throw e;
    }
    return handles;
  }

  /** Waits until the API answers GET /version, failing early when the process exits; checks the version. */
  private async waitForApi(
    spec: VmmSpec,
    h: VmmHandles,
    api: FirecrackerApi,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const timeoutMs = this.opts.startTimeoutMs ?? START_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal?.aborted) throw new AppError('cancelled', `cancelled while starting VM "${spec.name}"`);
      if (h.startTime === 0 || !(await this.proc.isAlive(h.pid, h.startTime))) {
        const out = await logTail(spec.consoleLog);
        throw operationFailed(`firecracker exited while starting VM "${spec.name}"`, {
          detail: out,
          hint: out ? `firecracker said:\n${out}` : `see ${spec.consoleLog} and ${spec.vmmLog}`,
        });
      }
      if (await exists(spec.controlSocket)) {
        const version = await api.getVersion().catch(() => undefined);
        if (version !== undefined) {
          const check = checkFirecrackerVersion(version);
          if (!check.ok)
            throw precondition(
              check.message ?? `unsupported firecracker ${version}`,
              `install a newer firecracker or set firecracker_bin in config.toml`,
            );
          return;
        }
      }
      if (Date.now() >= deadline) {
        throw operationFailed(
          `firecracker did not answer on its API socket ${spec.controlSocket} within ${timeoutMs / 1000} s for VM "${spec.name}"`,
          {
            hint: `see firecracker's output in ${spec.consoleLog}`,
          },
        );
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  async kill(h: VmmHandles, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!(await this.proc.isAlive(h.pid, h.startTime))) return;
    if (sig === 'SIGTERM') {
      // Ctrl-Alt-Del lets the guest shut down; with reboot=k its reboot ends firecracker.
      const api = new FirecrackerApi(h.controlSocket, { timeoutMs: 2000 });
      const sent = await api.request('PUT', '/actions', { action_type: 'SendCtrlAltDel' }).then(
        () => true,
        () => false,
      );
      if (sent && (await this.proc.waitForExit(h.pid, h.startTime, this.opts.gracefulStopMs ?? GRACEFUL_STOP_MS)))
        return;
    }
    this.proc.signal(h.pid, sig);
    if (!(await this.proc.waitForExit(h.pid, h.startTime, KILL_WAIT_MS))) {
      this.proc.signal(h.pid, 'SIGKILL');
      await this.proc.waitForExit(h.pid, h.startTime, KILL_WAIT_MS);
    }
  }

  isAlive(h: VmmHandles): Promise<boolean> {
    return this.proc.isAlive(h.pid, h.startTime);
  }

  /** PATCH /vm {"state": "Paused"}: firecracker stops the vCPUs (GET / then reports "Paused"). */
  async pause(h: VmmHandles): Promise<void> {
    await this.api(h).request('PATCH', '/vm', { state: 'Paused' });
  }

  /** PATCH /vm {"state": "Resumed"}. */
  async resume(h: VmmHandles): Promise<void> {
    await this.api(h).request('PATCH', '/vm', { state: 'Resumed' });
  }

  async runState(h: VmmHandles): Promise<VmmRunState> {
    const { state } = await this.api(h).instanceInfo();
    return state === 'Running' ? 'running' : state === 'Paused' ? 'paused' : 'other';
  }

  private api(h: VmmHandles): FirecrackerApi {
    return new FirecrackerApi(h.controlSocket, { timeoutMs: this.opts.apiTimeoutMs });
  }
}
