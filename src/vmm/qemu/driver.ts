import { access } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { operationFailed } from '../../errors.js';
import type { CommandRunner } from '../../system/runner.js';
import { realProcessOps, type ProcessOps } from '../../system/process.js';
import {
  PortInUse,
  type PortForward,
  type VmmDriver,
  type VmmHandles,
  type VmmRunState,
  type VmmSpec,
} from '../driver.js';
import { checkHostfwdReply, hostfwdCommand } from './hostfwd.js';
import { QEMU_CAPABILITIES, qemuArgv } from './argv.js';
import { qmpCommand, qmpRunState } from './qmp.js';

const START_TIMEOUT_MS = 10_000;

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

async function logTail(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trimEnd().split('\n').slice(-10).join('\n');
  } catch {
    return '';
  }
}

export class QemuDriver implements VmmDriver {
  readonly kind = 'qemu' as const;
  readonly capabilities = QEMU_CAPABILITIES;

  constructor(
    private readonly runner: CommandRunner,
    private readonly qemuBin: string,
    /** Process primitives; tests pass a fake process. */
    private readonly proc: ProcessOps = realProcessOps,
    /** One QMP command; tests pass a fake. */
    private readonly qmp: typeof qmpCommand = qmpCommand,
  ) {}

  async start(spec: VmmSpec, signal?: AbortSignal, onSpawn?: (h: VmmHandles) => Promise<void>): Promise<VmmHandles> {
    const pid = await this.runner.spawnDetached(qemuArgv(this.qemuBin, spec), { logFile: spec.vmmLog });
    const startTime = await this.proc.startTime(pid);
    const handles: VmmHandles = {
      pid,
      startTime: startTime ?? 0,
      controlSocket: spec.controlSocket,
      ...(spec.agentSocket === undefined ? {} : { agentSocket: spec.agentSocket }),
    };
    if (startTime !== undefined && onSpawn) {
      try {
        await onSpawn(handles);
      } catch (e) {
        await this.kill(handles);
        throw e;
      }
    }
    // qemu creates the QMP socket once its command line is accepted; an early exit is a config error.
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (startTime === undefined || !(await this.proc.isAlive(pid, startTime))) {
        const log = await logTail(spec.vmmLog);
        if (
          spec.net.mode === 'user' &&
          log.includes(`Could not set up host forwarding rule 'tcp:127.0.0.1:${spec.net.sshPort}-`)
        ) {
          throw new PortInUse(
            spec.net.sshPort,
            `qemu could not bind the ssh port 127.0.0.1:${spec.net.sshPort} for VM "${spec.name}" (taken by another process)`,
            { detail: log },
          );
        }
        throw operationFailed(`qemu exited while starting VM "${spec.name}"`, {
          detail: log,
          hint: log ? `qemu said:\n${log}` : `see ${spec.vmmLog}`,
        });
      }
      if (await exists(spec.controlSocket)) return handles;
      if (signal?.aborted) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.kill(handles);
    throw operationFailed(
      `qemu did not open its QMP socket within ${START_TIMEOUT_MS / 1000} s for VM "${spec.name}"`,
      {
        hint: `see ${spec.vmmLog}`,
      },
    );
  }

  async kill(h: VmmHandles, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!(await this.proc.isAlive(h.pid, h.startTime))) return;
    if (sig === 'SIGTERM') {
      // Ask nicely through QMP first; fall back to the signal.
      await qmpCommand(h.controlSocket, 'quit', undefined, 2000).catch(() => undefined);
      if (await this.proc.waitForExit(h.pid, h.startTime, 3000)) return;
    }
    this.proc.signal(h.pid, sig);
    if (!(await this.proc.waitForExit(h.pid, h.startTime, 5000))) {
      this.proc.signal(h.pid, 'SIGKILL');
      await this.proc.waitForExit(h.pid, h.startTime, 5000);
    }
  }

  isAlive(h: VmmHandles): Promise<boolean> {
    return this.proc.isAlive(h.pid, h.startTime);
  }

  /** QMP `stop`: the vCPUs halt at once (qemu's run state becomes "paused"). */
  async pause(h: VmmHandles): Promise<void> {
    await this.qmp(h.controlSocket, 'stop');
  }

  /** QMP `cont`: the vCPUs run again. */
  async resume(h: VmmHandles): Promise<void> {
    await this.qmp(h.controlSocket, 'cont');
  }

  async runState(h: VmmHandles): Promise<VmmRunState> {
    return qmpRunState(await this.qmp(h.controlSocket, 'query-status'));
  }

  /** A port forward on the running user netdev, through QMP's human-monitor-command (hostfwd_add/remove). */
  async forward(h: VmmHandles, op: 'add' | 'remove', f: PortForward): Promise<void> {
    const reply = await this.qmp(h.controlSocket, 'human-monitor-command', {
      'command-line': hostfwdCommand(op, f),
    });
    checkHostfwdReply(op, f, reply);
  }
}
