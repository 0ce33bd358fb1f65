import { join } from 'node:path';
import type { PublishedPort, VmStats, VmView } from '../../api/methods.js';
import { sshArgv } from '../../ssh/argv.js';
import type { VmRow } from '../../store/vms.js';
import { processUsage } from '../../system/process.js';
import { vmFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { Logger } from '../context.js';
import type { GuestTraits } from './boot.js';
import { CONSOLE_MAX_BYTES, cutConsole, LOGS_TAIL_BYTES, previousLog, readConsoleTail } from './console.js';
import type { RuntimeFiles } from './runtime.js';
import { isLive } from './states.js';
import type { VmmChoice } from '../../vmm/choice.js';

/* What users see of VMs: the view, console logs, and process/guest stats. Reads only. */

/** What the view shows beyond the row: the guest IP, the daemon's VMM choice, published ports. */
export interface ViewExtras {
  ip?: string;
  vmm?: VmmChoice;
  published?: PublishedPort[];
}

/** The API view of a VM row. */
export function vmView(v: VmRow, imageName: string | undefined, accelReason: string, extra: ViewExtras = {}): VmView {
  const { ip, vmm, published = [] } = extra;
  return {
    id: v.id,
    name: v.name,
    state: v.state,
    image: imageName ?? v.imageId,
    vcpu: v.vcpu,
    memory_mib: v.memoryMib,
    disk_bytes: v.diskBytes,
    vmm: v.vmm,
    // The daemon's reason holds for the VMs it made with that VMM (a VM keeps the one it was made with).
    ...(vmm !== undefined && v.vmm === vmm.vmm ? { vmm_reason: vmm.reason } : {}),
    accel: v.accel,
    accel_reason: accelReason,
    network_mode: v.networkMode,
    nat: v.nat,
    ip: ip ?? null,
    ssh: v.state === 'running' && v.sshPort ? `${ip ?? '127.0.0.1'}:${v.sshPort}` : null,
    disk_strategy: v.diskStrategy,
    pid: v.handles?.pid ?? null,
    workspace: v.workspace
      ? {
          guest_path: v.workspace.guestPath,
          host_path: v.workspace.hostPath,
          head: v.workspace.head,
          prepared_at: v.workspace.preparedAt,
        }
      : null,
    created_at: v.createdAt,
    published,
    boot: v.bootTimings ?? null,
    ...(v.rootDisk?.vars.warm ? { warm_start: v.rootDisk.vars.warm } : {}),
  };
}

/** The tail of the console log (LOGS_TAIL_BYTES unless asked for less; never more than CONSOLE_MAX_BYTES). */
export async function consoleLogs(
  paths: Paths,
  vm: VmRow,
  tailBytes?: number,
): Promise<{ text: string; path: string; size: number }> {
  const path = join(paths.vmDir(vm.id), vmFiles.console);
  const { text, size } = await readConsoleTail(path, Math.min(tailBytes ?? LOGS_TAIL_BYTES, CONSOLE_MAX_BYTES));
  return { text, path, size };
}

/** Cuts back the console log of every VM whose VMM may be writing it; returns their names. */
export async function capConsoles(
  paths: Paths,
  vms: readonly VmRow[],
  log: Logger,
  maxBytes: number,
): Promise<string[]> {
  const cut: string[] = [];
  for (const vm of vms) {
    if (vm.state === 'stopped' || vm.state === 'error') continue;
    const path = join(paths.vmDir(vm.id), vmFiles.console);
    try {
      if (await cutConsole(path, maxBytes)) {
        cut.push(vm.name);
        log.info('console log cut back', { name: vm.name, limit_bytes: maxBytes, kept_in: previousLog(path) });
      }
    } catch (e) {
      log.warn('cannot cut back the console log', { name: vm.name, error: String(e) });
    }
  }
  return cut;
}

export type { VmStats };

/** What vmStats asks of the guest agents (VmAgents). */
export interface UptimeAgents {
  health(vm: Pick<VmRow, 'id' | 'name'>): Promise<{ uptimeMs: number }>;
}

/**
 * VMM process cpu/memory from /proc (running and paused VMs); guest uptime from the agent's health when
 * the guest has one (no sshd needed), else (or when it does not answer) over ssh.
 */
export async function vmStats(
  vm: VmRow,
  runtime: RuntimeFiles,
  runner: CommandRunner,
  agents: UptimeAgents,
  guestOf: (vm: VmRow) => Promise<GuestTraits>,
): Promise<VmStats> {
  const base = { name: vm.name, state: vm.state, pid: null, cpu_seconds: null, rss_bytes: null, guest_uptime_s: null };
  if (!isLive(vm.state) || !vm.handles) return base;
  const usage = await processUsage(vm.handles.pid);
  // A paused guest answers nothing until resumed: only its VMM process is read.
  const guest = vm.state === 'paused' ? { agent: false, sshd: false, orderlyShutdown: false } : await guestOf(vm);
  let up = guest.agent
    ? await agents.health(vm).then(
        (h) => h.uptimeMs / 1000,
        () => NaN,
      )
    : NaN;
  if (!Number.isFinite(up) && guest.sshd) up = await sshUptime(vm, runtime, runner);
  return {
    ...base,
    pid: vm.handles.pid,
    cpu_seconds: usage?.cpuSeconds ?? null,
    rss_bytes: usage?.rssBytes ?? null,
    guest_uptime_s: Number.isFinite(up) ? up : null,
  };
}

/** `cat /proc/uptime` over ssh; NaN when it fails. */
async function sshUptime(vm: VmRow, runtime: RuntimeFiles, runner: CommandRunner): Promise<number> {
  const argv = sshArgv('ssh', runtime.sshInfo(vm), {
    batch: true,
    connectTimeoutS: 5,
    remoteCommand: 'cat /proc/uptime',
  });
  const res = await runner.run(argv, { timeoutMs: 10_000 }).catch(() => undefined);
  return res?.code === 0 ? Number(res.stdout.split(' ')[0]) : NaN;
}
