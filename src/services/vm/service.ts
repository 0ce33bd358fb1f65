import { randomBytes, randomUUID } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { copyFile, mkdir, rename, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { renderSshConfig } from '../../ssh/config.js';
import type { SshInfo, VmView } from '../../api/methods.js';
import { maxMemoryMib, maxVcpu, type Config, type HostFacts } from '../../config/load.js';
import { checkDiskSize, parseSize } from '../../config/sizes.js';
import { AppError, alreadyExists, badRequest, notFound, precondition } from '../../errors.js';
import { injectIntoImage } from '../../ext4/inject.js';
import { bootArgs, DISK_SERIALS, macFromId } from '../../guest/bootargs.js';
import { sshArgv } from '../../ssh/argv.js';
import type { ImageRepo } from '../../store/images.js';
import type { VmHandles, VmRepo, VmRow } from '../../store/vms.js';
import type { AccelDecision } from '../../system/host.js';
import { freeLoopbackPort, readSshBanner } from '../../system/net.js';
import { findProcesses, processStartTime, processUsage } from '../../system/process.js';
import { vmFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import { PortInUse, type DiskSpec, type VmmDriver, type VmmHandles, type VmmSpec } from '../../vmm/driver.js';
import { qemuOptValue, USER_NET } from '../../vmm/qemu/argv.js';
import { quietContext, type Logger, type OpContext } from '../context.js';
import { exists, removeTree } from '../fsutil.js';
import type { ImageService } from '../image/service.js';
import { checkCompat } from '../../kernel/compat.js';
import type { KernelFiles } from '../kernel/manifest.js';
import { BootFailure, waitForSsh } from './bootwatch.js';
import { CONSOLE_MAX_BYTES, cutConsole, LOGS_TAIL_BYTES, previousLog, readConsoleTail } from './console.js';
import { handlesProblem, readHandlesFile } from './handles.js';
import { generateName, validateVmName } from './names.js';
import type { SshKeys } from './sshkeys.js';
import { assertTransition } from './states.js';
import { makeRootDisk, strategyOrder } from './rootdisk.js';
import { noPause, type Pause } from '../testpause.js';

export interface CreateParams {
  name?: string | undefined;
  image?: string | undefined;
  vcpu?: number | undefined;
  memory_mib?: number | undefined;
  disk_size?: string | undefined;
  nat?: boolean | undefined;
  start?: boolean | undefined;
}

export interface VmServiceDeps {
  paths: Paths;
  vms: VmRepo;
  images: ImageRepo;
  imageService: Pick<ImageService, 'ensure' | 'kernelFilesFor'>;
  driver: VmmDriver;
  runner: CommandRunner;
  keys: SshKeys;
  config: Config;
  /** CPUs and RAM of this host: the upper limits of --vcpu and --memory. */
  host: HostFacts;
  accel: AccelDecision;
  tscKhz: number | undefined;
  log: Logger;
  /** How readiness is probed; the default reads the sshd banner, then runs `true` over ssh. */
  sshProbe?: (info: SshInfo, signal: AbortSignal) => Promise<'none' | 'banner' | 'ready'>;
  stallMs?: number;
  /** How long a graceful stop waits for the VMM to exit before killing it (SPEC §4: 10 s). */
  stopGraceMs?: number;
  /** Test-only pause points (BANGER_TEST_PAUSE); none by default. */
  pause?: Pause;
  /** Time for the graceful-stop wait; tests pass a pretend clock. */
  clock?: Clock;
}

/** Wall-clock time and sleeping, as the graceful stop uses them. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

/** How many ssh ports a start tries when the one it picked was taken before the VMM bound it. */
const SSH_PORT_ATTEMPTS = 3;

const STALL_MS = 30_000;
const STOP_GRACE_MS = 10_000;

function checkVcpu(vcpu: number, host: HostFacts): void {
  const max = maxVcpu(host);
  if (!Number.isInteger(vcpu) || vcpu < 1)
    throw badRequest(`invalid --vcpu ${vcpu}: must be a whole number from 1 to ${max}`, 'e.g. --vcpu 1');
  if (vcpu > max)
    throw badRequest(
      `invalid --vcpu ${vcpu}: more than this host's ${host.cpus} CPUs (at most ${max})`,
      `use --vcpu ${max} or less`,
    );
}

function checkMemory(mib: number, host: HostFacts): void {
  if (!Number.isInteger(mib) || mib < 128)
    throw badRequest(`invalid --memory ${mib}: must be at least 128 MiB`, 'e.g. --memory 2048 (MiB) or --memory 2G');
  const max = maxMemoryMib(host);
  if (mib > max)
    throw badRequest(
      `invalid --memory ${mib}: more than this host's memory (at most ${max} MiB)`,
      `use --memory ${max} or less (MiB), e.g. --memory 2G`,
    );
}

function parseDiskSize(size: string): number {
  return checkDiskSize(parseSize(size, '--disk-size'), '--disk-size');
}

/** VM lifecycle: create (+start), list, delete, ssh details, logs, reconcile. */
export class VmService {
  private readonly locks = new Map<string, Promise<unknown>>();

  private readonly pause: Pause;

  constructor(private readonly d: VmServiceDeps) {
    this.pause = d.pause ?? noPause;
  }

  list(): VmView[] {
    return this.d.vms.list().map((v) => this.view(v));
  }

  /** A name, an id, or a unique id prefix. */
  resolve(ref: string): VmRow {
    const byName = this.d.vms.byName(ref) ?? this.d.vms.get(ref);
    if (byName) return byName;
    const matches = this.d.vms.list().filter((v) => v.id.startsWith(ref));
    if (matches.length === 1) return matches[0] as VmRow;
    if (matches.length > 1) {
      throw badRequest(
        `"${ref}" matches ${matches.length} VMs: ${matches.map((m) => m.name).join(', ')}`,
        'use the full name or a longer id prefix',
      );
    }
    throw notFound(`no VM named "${ref}"`, 'run `banger vm list` to see your VMs');
  }

  /** One VM, with any problem found in its runtime files (a corrupt handles.json). */
  async show(ref: string): Promise<VmView> {
    const vm = this.resolve(ref);
    const { problem } = await this.runtimeHandles(vm);
    const v = this.view(vm);
    return problem === undefined ? v : { ...v, problems: [problem] };
  }

  async create(p: CreateParams, ctx: OpContext): Promise<VmView> {
    const cfg = this.d.config;
    // An omitted name is generated; an empty one is a mistake (SPEC §4).
    if (p.name !== undefined) validateVmName(p.name);
    const vcpu = p.vcpu ?? cfg.vmDefaults.vcpu;
    checkVcpu(vcpu, this.d.host);
    const memoryMib = p.memory_mib ?? cfg.vmDefaults.memoryMib;
    checkMemory(memoryMib, this.d.host);
    const diskBytes = p.disk_size === undefined ? cfg.vmDefaults.diskSizeBytes : parseDiskSize(p.disk_size);
    if (diskBytes < 64 * 1048576)
      throw badRequest(`invalid --disk-size ${p.disk_size}: must be at least 64M`, 'e.g. --disk-size 8G');
    this.checkVmmChoice();
    if (cfg.networkMode !== 'user') {
      throw precondition(
        'network_mode = "bridge" is not supported by this banger yet',
        'remove network_mode from config.toml to use user-mode networking',
      );
    }
    if (p.name && this.d.vms.byName(p.name)) {
      throw alreadyExists(
        `a VM named "${p.name}" already exists`,
        `pick another --name or delete it with \`banger vm delete ${p.name}\``,
      );
    }

    const image = await this.d.imageService.ensure(p.image ?? cfg.defaultImageName, ctx);
    const kernel = await this.d.imageService.kernelFilesFor(image, ctx);
    const incompatible = checkCompat(
      kernel.manifest.name,
      {
        format: kernel.manifest.format,
        pvhNote: kernel.manifest.traits.pvhNote ?? false,
        virtioMmio: kernel.manifest.traits.virtioMmio ?? 'unknown',
      },
      kernel.initrd !== undefined,
      this.d.driver.kind,
    );
    if (incompatible) throw incompatible;
    const pub = await this.d.keys.ensureKey();

    const id = randomBytes(16).toString('hex');
    const now = new Date().toISOString();
    const row: VmRow = {
      id,
      name: p.name ?? generateName((n) => this.d.vms.byName(n) !== undefined),
      imageId: image.id,
      state: 'creating',
      vcpu,
      memoryMib,
      diskBytes,
      overlayBytes: Math.max(cfg.vmDefaults.systemOverlaySizeBytes, image.sizeBytes),
      nat: p.nat ?? false,
      vmm: this.d.driver.kind,
      accel: this.d.accel.accel,
      networkMode: 'user',
      sshPort: undefined,
      diskStrategy: 'qcow2-overlay',
      handles: undefined,
      bootId: undefined,
      createdAt: now,
      updatedAt: now,
    };
    try {
      this.d.vms.insert(row);
    } catch (e) {
      if (String(e).includes('UNIQUE'))
        throw alreadyExists(`a VM named "${row.name}" already exists`, 'pick another --name');
      throw e;
    }
    return this.withLock(id, async () => {
      try {
        ctx.progress({ stage: 'disks', message: 'preparing disks' });
        const dir = this.d.paths.vmDir(id);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        // Device-mapper is never chosen automatically yet: it needs privileges and dm, which these hosts lack.
        const order = strategyOrder({ vmmReadsQcow2: this.d.driver.kind === 'qemu', dmUsable: false });
        const { plan } = await makeRootDisk(
          this.d.runner,
          { base: image.rootfsPath, target: join(dir, vmFiles.overlay), sizeBytes: row.overlayBytes, vmId: id },
          order,
          ctx.signal,
        );
        this.d.vms.update(id, { diskStrategy: plan.strategy });
        await this.makeWorkDisk(join(dir, vmFiles.work), image.workSeedPath, diskBytes, pub, ctx.signal);
        // With a boot the row stays `creating` until the guest is up: a daemon killed before then
        // leaves a create that never finished, which the next start rolls back (reconcile).
        if (p.start ?? true) await this.startLocked(id, kernel, ctx);
        else this.d.vms.update(id, { state: 'stopped' });
        return this.view(this.mustGet(id));
      } catch (e) {
        if (e instanceof BootFailure && e.kind !== 'exited') {
          // Kept for inspection (SPEC §4); a stuck VMM is stopped so it does not spin.
          if (e.kind === 'stuck') await this.stopVmm(id, 'error');
          throw e;
        }
        await this.destroy(id).catch((err: unknown) =>
          this.d.log.error('cleanup after failed create failed', { id, error: String(err) }),
        );
        throw e;
      }
    });
  }

  /** Resolves several refs against one snapshot of the VM table (multi-target verbs). */
  resolveMany(
    refs: readonly string[],
  ): { ref: string; id?: string; name?: string; error?: { code: string; message: string; hint?: string } }[] {
    return refs.map((ref) => {
      try {
        const vm = this.resolve(ref);
        return { ref, id: vm.id, name: vm.name };
      } catch (e) {
        const err = e as AppError;
        return { ref, error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) } };
      }
    });
  }

  async start(ref: string, ctx: OpContext): Promise<VmView> {
    const vm = this.resolve(ref);
    return this.withLock(vm.id, async () => {
      const cur = this.mustGet(vm.id);
      if (cur.state === 'running') return this.view(cur);
      const image = this.d.images.get(cur.imageId);
      if (!image)
        throw precondition(
          `the image of VM "${cur.name}" is gone`,
          `delete the VM with \`banger vm delete ${cur.name}\``,
        );
      const kernel = await this.d.imageService.kernelFilesFor(image, ctx);
      try {
        await this.startLocked(vm.id, kernel, ctx);
      } catch (e) {
        if (!(e instanceof BootFailure && e.kind === 'ssh_timeout'))
          await this.stopVmm(vm.id, e instanceof BootFailure ? 'error' : 'stopped');
        throw e;
      }
      return this.view(this.mustGet(vm.id));
    });
  }

  /** Graceful first (ssh `sync; poweroff`), then forceful after STOP_GRACE_MS (SPEC §4). */
  async stop(ref: string, _ctx: OpContext): Promise<VmView> {
    const vm = this.resolve(ref);
    return this.withLock(vm.id, async () => {
      const cur = this.mustGet(vm.id);
      if (cur.state === 'stopped') return this.view(cur);
      if (cur.state === 'running') {
        this.d.vms.update(cur.id, { state: 'stopping' });
        const h = cur.handles;
        if (h && cur.sshPort) {
          const argv = sshArgv('ssh', this.sshInfoOf(cur), {
            batch: true,
            connectTimeoutS: 3,
            remoteCommand: 'sync; (sleep 0.2; poweroff) >/dev/null 2>&1 &',
          });
          await this.d.runner.run(argv, { timeoutMs: 5000 }).catch(() => undefined);
          const handles = this.vmmHandles(h);
          const clock = this.d.clock ?? realClock;
          const deadline = clock.now() + (this.d.stopGraceMs ?? STOP_GRACE_MS);
          while (clock.now() < deadline && (await this.d.driver.isAlive(handles))) await clock.sleep(100);
        }
      }
      await this.stopVmm(cur.id, 'stopped');
      this.d.log.info('VM stopped', { name: cur.name });
      return this.view(this.mustGet(cur.id));
    });
  }

  async restart(ref: string, ctx: OpContext): Promise<VmView> {
    await this.stop(ref, ctx);
    return this.start(ref, ctx);
  }

  /** Immediate: the VMM gets the signal, no guest shutdown. */
  async kill(ref: string, signal: NodeJS.Signals): Promise<VmView> {
    const vm = this.resolve(ref);
    return this.withLock(vm.id, async () => {
      const cur = this.mustGet(vm.id);
      const { handles: h } = await this.runtimeHandles(cur);
      if (h) await this.d.driver.kill(this.vmmHandles(h), signal);
      await this.stopVmm(cur.id, 'stopped');
      return this.view(this.mustGet(cur.id));
    });
  }

  /** Changes vcpu/memory/disk of a stopped VM; the work disk only grows. */
  async set(
    ref: string,
    p: { vcpu?: number | undefined; memory_mib?: number | undefined; disk_size?: string | undefined },
    ctx: OpContext,
  ): Promise<VmView> {
    const vm = this.resolve(ref);
    if (p.vcpu !== undefined) checkVcpu(p.vcpu, this.d.host);
    if (p.memory_mib !== undefined) checkMemory(p.memory_mib, this.d.host);
    const disk = p.disk_size === undefined ? undefined : parseDiskSize(p.disk_size);
    if (p.vcpu === undefined && p.memory_mib === undefined && disk === undefined) {
      throw badRequest('nothing to change', 'pass --vcpu, --memory or --disk-size');
    }
    return this.withLock(vm.id, async () => {
      const cur = this.mustGet(vm.id);
      if (cur.state !== 'stopped' && cur.state !== 'error') {
        throw precondition(
          `VM "${cur.name}" is ${cur.state}; vm set needs it stopped`,
          `run \`banger vm stop ${cur.name}\` first`,
        );
      }
      if (disk !== undefined && disk !== cur.diskBytes) {
        if (disk < cur.diskBytes)
          throw badRequest(
            `--disk-size ${p.disk_size} is smaller than the current ${cur.diskBytes} bytes`,
            'disks only grow',
          );
        const work = join(this.d.paths.vmDir(cur.id), vmFiles.work);
        // The guest may have been killed with a dirty journal: replay it before resizing offline.
        await this.d.runner.run(['e2fsck', '-fy', work], { signal: ctx.signal });
        await truncate(work, disk);
        await this.d.runner.check(['resize2fs', work], { signal: ctx.signal });
      }
      this.d.vms.setSpec(cur.id, {
        vcpu: p.vcpu ?? cur.vcpu,
        memoryMib: p.memory_mib ?? cur.memoryMib,
        diskBytes: disk ?? cur.diskBytes,
      });
      return this.view(this.mustGet(cur.id));
    });
  }

  /** auto_stop_stale_after: stops running VMs no banger command touched for that long. */
  async stopStale(maxIdleMs: number, now = Date.now()): Promise<string[]> {
    const stale = this.d.vms.list().filter((v) => v.state === 'running' && now - Date.parse(v.updatedAt) > maxIdleMs);
    for (const v of stale) {
      this.d.log.info('stopping a VM untouched for longer than auto_stop_stale_after', { name: v.name });
      await this.stop(v.id, quietContext('auto-stop')).catch((e: unknown) =>
        this.d.log.warn('auto-stop failed', { name: v.name, error: String(e) }),
      );
    }
    return stale.map((v) => v.name);
  }

  /** Deletes every VM that is not running; returns their names. */
  async prune(ctx: OpContext): Promise<{ deleted: string[] }> {
    const victims = this.d.vms.list().filter((v) => v.state === 'stopped' || v.state === 'error');
    for (const v of victims) await this.delete(v.id, ctx);
    return { deleted: victims.map((v) => v.name) };
  }

  async delete(ref: string, _ctx: OpContext): Promise<{ name: string }> {
    const vm = this.resolve(ref);
    await this.withLock(vm.id, () => this.destroy(vm.id));
    return { name: vm.name };
  }

  sshInfo(ref: string): SshInfo {
    const vm = this.resolve(ref);
    this.d.vms.touch(vm.id);
    if (vm.state !== 'running' || vm.sshPort === undefined) {
      throw precondition(
        `VM "${vm.name}" is ${vm.state}; ssh needs it running`,
        `start it first, or create one with \`banger vm run\``,
      );
    }
    return this.sshInfoOf(vm);
  }

  /** The tail of the console log (LOGS_TAIL_BYTES unless asked for less; never more than CONSOLE_MAX_BYTES). */
  async logs(ref: string, tailBytes?: number): Promise<{ text: string; path: string; size: number }> {
    const vm = this.resolve(ref);
    const path = join(this.d.paths.vmDir(vm.id), vmFiles.console);
    const { text, size } = await readConsoleTail(path, Math.min(tailBytes ?? LOGS_TAIL_BYTES, CONSOLE_MAX_BYTES));
    return { text, path, size };
  }

  /** Cuts back the console log of every VM whose VMM may be writing it (the daemon calls this every few seconds). */
  async capConsoles(maxBytes = CONSOLE_MAX_BYTES): Promise<string[]> {
    const cut: string[] = [];
    for (const vm of this.d.vms.list()) {
      if (vm.state === 'stopped' || vm.state === 'error') continue;
      const path = join(this.d.paths.vmDir(vm.id), vmFiles.console);
      try {
        if (await cutConsole(path, maxBytes)) {
          cut.push(vm.name);
          this.d.log.info('console log cut back', { name: vm.name, limit_bytes: maxBytes, kept_in: previousLog(path) });
        }
      } catch (e) {
        this.d.log.warn('cannot cut back the console log', { name: vm.name, error: String(e) });
      }
    }
    return cut;
  }

  /** VMM process cpu/memory from /proc, guest uptime over ssh. */
  async stats(ref: string): Promise<{
    name: string;
    state: string;
    pid: number | null;
    cpu_seconds: number | null;
    rss_bytes: number | null;
    guest_uptime_s: number | null;
  }> {
    const vm = this.resolve(ref);
    const base = {
      name: vm.name,
      state: vm.state,
      pid: null,
      cpu_seconds: null,
      rss_bytes: null,
      guest_uptime_s: null,
    };
    if (vm.state !== 'running' || !vm.handles) return base;
    const usage = await processUsage(vm.handles.pid);
    const res = await this.d.runner
      .run(sshArgv('ssh', this.sshInfoOf(vm), { batch: true, connectTimeoutS: 5, remoteCommand: 'cat /proc/uptime' }), {
        timeoutMs: 10_000,
      })
      .catch(() => undefined);
    const up = res?.code === 0 ? Number(res.stdout.split(' ')[0]) : NaN;
    return {
      ...base,
      pid: vm.handles.pid,
      cpu_seconds: usage?.cpuSeconds ?? null,
      rss_bytes: usage?.rssBytes ?? null,
      guest_uptime_s: Number.isFinite(up) ? up : null,
    };
  }

  /**
   * Startup, after a clean stop or a crash. Only a boot the daemon saw finish
   * is adopted; everything else converges to a state a retry can start from:
   * - `creating` (a create that never finished, its first boot included): the
   *   VMM, if any, is killed and the VM removed, as a failed create would
   *   have done; the client already got an error, and a retry reuses the name.
   * - `starting` (a start whose boot was never confirmed) and `stopping` (a
   *   stop that was asked for): the VMM, if any, is killed; the VM is stopped
   *   with its disks, and `vm start` works again.
   * - `running`: adopted when its VMM is alive (same pid and start time),
   *   else marked stopped.
   * The VMM is found by the handles recorded right after its spawn
   * (handles.json, else the store's copy); a VM interrupted before even those
   * were written has its VMM found by its control socket on the process's
   * command line. A running VM whose handles.json is corrupt and has no copy
   * in the store is marked error: nothing says which process is its VMM.
   */
  async reconcile(): Promise<void> {
    for (const vm of this.d.vms.list()) {
      if (vm.state === 'stopped' || vm.state === 'error') continue;
      const { handles, problem } = await this.runtimeHandles(vm);
      if (problem !== undefined && handles === undefined && vm.state === 'running') {
        // Nothing says which process is its VMM: marking it stopped could orphan a live one.
        this.d.log.error('cannot tell whether the VMM of a VM still runs; marking it error', {
          name: vm.name,
          problem,
        });
        this.d.vms.update(vm.id, { state: 'error' });
        continue;
      }
      if (problem !== undefined) this.d.log.warn('handles.json of a VM is corrupt', { name: vm.name, problem });
      if (vm.state === 'creating' || vm.state === 'stopping') {
        // A create nobody watches any more is undone; a stop someone asked for is finished.
        await this.killUnrecorded(vm, handles);
        if (vm.state === 'creating') {
          this.d.log.warn('removing a VM whose creation was interrupted', { name: vm.name });
          await this.destroy(vm.id);
        } else {
          this.d.log.warn('VM was stopping when the daemon stopped; finishing the stop', { name: vm.name });
          await this.stopVmm(vm.id, 'stopped');
        }
        continue;
      }
      // running, or starting (a start interrupted after its VMM was spawned): a live VMM is adopted.
      const alive = handles ? await this.d.driver.isAlive(this.vmmHandles(handles)) : false;
      if (alive) {
        this.d.log.info('adopted running VM', { name: vm.name, pid: handles?.pid });
        // A row that lost its handles (known only through handles.json) gets them back.
        if (vm.state !== 'running' || !vm.handles)
          this.d.vms.update(vm.id, { state: 'running', handles, sshPort: handles?.sshPort ?? vm.sshPort });
        continue;
      }
      await this.killUnrecorded(vm, handles);
      this.d.log.info('VM is no longer running; marking it stopped', { name: vm.name });
      await this.clearRuntime(vm.id);
      this.d.vms.update(vm.id, { state: 'stopped', handles: undefined, sshPort: undefined });
    }
  }

  /** Kills a VM's VMM that has no recorded handles (the daemon died within microseconds of its spawn). */
  private async killUnrecorded(vm: VmRow, handles: VmHandles | undefined): Promise<void> {
    if (handles) return;
    // Matched on the VMM's control-socket argument (qemu `-qmp unix:PATH,…`, firecracker `--api-sock PATH`),
    // which only that VMM carries: a user's `tail -f` of the console log is never matched.
    const sock = this.d.paths.qmpSocket(vm.id);
    const qmpArg = `unix:${qemuOptValue(sock)},`;
    for (const pid of await findProcesses((argv) => argv.some((a) => a === sock || a.startsWith(qmpArg)))) {
      const startTime = await processStartTime(pid);
      if (startTime === undefined) continue;
      this.d.log.warn('killing a VMM the daemon had not recorded yet', { name: vm.name, pid });
      await this.d.driver.kill({ pid, startTime, controlSocket: sock });
    }
  }

  /** Fails before anything is created when the configured VMM cannot run here (SPEC §1). */
  private checkVmmChoice(): void {
    if (this.d.config.vmm !== 'firecracker') return;
    if (this.d.accel.accel !== 'kvm') {
      throw precondition(
        `vmm = "firecracker" needs hardware virtualization (KVM), and this host has none (${this.d.accel.reason})`,
        'set vmm = "auto" or "qemu" in config.toml to run under qemu, or use a host with VT-x/AMD-V and a read-write /dev/kvm',
      );
    }
    throw precondition(
      'vmm = "firecracker" needs bridge networking (a tap per VM), which this banger does not set up yet',
      'set vmm = "auto" or "qemu" in config.toml',
    );
  }

  private async startLocked(id: string, k: KernelFiles, ctx: OpContext): Promise<void> {
    const vm = this.mustGet(id);
    assertTransition(vm.name, vm.state, 'starting');
    const dir = this.d.paths.vmDir(id);
    const consoleLog = join(dir, vmFiles.console);
    // A fresh boot starts a fresh log.
    await writeFile(consoleLog, '');
    await removeTree(previousLog(consoleLog));
    const disks: DiskSpec[] = [
      {
        id: 'root',
        path: join(dir, vmFiles.overlay),
        format: vm.diskStrategy === 'qcow2-overlay' ? 'qcow2' : 'raw',
        readonly: false,
        serial: DISK_SERIALS.root,
      },
      { id: 'work', path: join(dir, vmFiles.work), format: 'raw', readonly: false, serial: DISK_SERIALS.work },
    ];
    if (k.modulesDisk)
      disks.push({ id: 'modules', path: k.modulesDisk, format: 'raw', readonly: true, serial: DISK_SERIALS.modules });
    const mac = macFromId(id);
    const cmdline = bootArgs({
      hostname: vm.name,
      ip: USER_NET.guestIp,
      gateway: USER_NET.gateway,
      dns: USER_NET.dns,
      mac,
      hasModulesDisk: k.modulesDisk !== undefined,
      rootByDevice: k.manifest.initrd !== 'banger',
      tscKhz: vm.accel === 'tcg' ? this.d.tscKhz : undefined,
    });
    if (vm.state !== 'creating') this.d.vms.update(id, { state: 'starting' });
    ctx.progress({
      stage: 'boot',
      message: `booting (${vm.vmm}, ${vm.accel === 'tcg' ? 'software emulation' : 'KVM'})`,
    });
    // The port was free when picked; another process may bind it before the VMM does: pick again.
    let sshPort = 0;
    let h: VmmHandles | undefined;
    for (let attempt = 1; h === undefined; attempt++) {
      sshPort = await freeLoopbackPort();
      const spec: VmmSpec = {
        id,
        name: vm.name,
        vcpu: vm.vcpu,
        memoryMib: vm.memoryMib,
        accel: vm.accel,
        kernelPath: k.kernel,
        initrdPath: k.initrd,
        cmdline,
        disks,
        net: { mode: 'user', sshPort, allowOutbound: vm.nat, mac },
        consoleLog,
        controlSocket: this.d.paths.qmpSocket(id),
        vmmLog: join(dir, vmFiles.vmmLog),
        agentSocket: this.d.paths.agentSocket(id),
      };
      try {
        h = await this.d.driver.start(
          spec,
          ctx.signal,
          // Recorded the moment the process exists, before qemu opens QMP: a daemon killed from
          // here on leaves a VMM that reconcile can find by pid and start time.
          async (spawned) => {
            const handles: VmHandles = {
              pid: spawned.pid,
              startTime: spawned.startTime,
              qmpSocket: spawned.controlSocket,
              sshPort,
            };
            await this.writeHandlesFile(id, handles);
            this.d.vms.update(id, { handles, sshPort, bootId: randomUUID() });
            await this.pause('after-spawn');
          },
        );
      } catch (e) {
        if (!(e instanceof PortInUse) || attempt >= SSH_PORT_ATTEMPTS) throw e;
        this.d.log.warn('the ssh port was taken before the VMM bound it; trying another', {
          name: vm.name,
          port: sshPort,
        });
      }
    }
    ctx.progress({ stage: 'ssh', message: 'waiting for ssh' });
    const info = this.sshInfoOf({ ...vm, sshPort });
    await waitForSsh({
      vmName: vm.name,
      consoleLog,
      timeoutMs: this.d.config.sshWaitTimeoutMs,
      stallMs: this.d.stallMs ?? STALL_MS,
      signal: ctx.signal,
      isAlive: () => this.d.driver.isAlive(h),
      probe: () => (this.d.sshProbe ?? ((i, s) => this.probeSsh(i, s)))(info, ctx.signal),
    }).catch(async (e: unknown) => {
      if (e instanceof BootFailure) {
        if (e.kind === 'ssh_timeout') this.d.vms.update(id, { state: 'running' });
        throw e;
      }
      throw e;
    });
    this.d.vms.update(id, { state: 'running' });
    await this.refreshSshConfig();
  }

  /** Rewrites banger's ssh_config atomically from the running VMs. */
  private async refreshSshConfig(): Promise<void> {
    const hosts = this.d.vms
      .list()
      .filter((v) => v.state === 'running' && v.sshPort)
      .map((v) => ({
        name: v.name,
        host: '127.0.0.1',
        port: v.sshPort as number,
        key: this.d.keys.keyPath,
        knownHosts: this.d.keys.knownHosts,
      }));
    const file = this.d.paths.sshConfigFile;
    try {
      await mkdir(dirname(file), { recursive: true });
      await writeFile(`${file}.tmp`, renderSshConfig(hosts), { mode: 0o600 });
      await rename(`${file}.tmp`, file);
    } catch (e) {
      this.d.log.warn('cannot write ssh_config', { file, error: String(e) });
    }
  }

  private async probeSsh(info: SshInfo, signal: AbortSignal): Promise<'none' | 'banner' | 'ready'> {
    if (!(await readSshBanner(info.host, info.port, 1500))) return 'none';
    const argv = sshArgv('ssh', info, { batch: true, connectTimeoutS: 5, remoteCommand: 'true' });
    const res = await this.d.runner.run(argv, { timeoutMs: 20_000, signal }).catch(() => undefined);
    return res?.code === 0 ? 'ready' : 'banner';
  }

  private async makeWorkDisk(
    path: string,
    seed: string | undefined,
    bytes: number,
    pubKey: string,
    signal: AbortSignal,
  ): Promise<void> {
    if (seed && (await exists(seed))) {
      // Copy the small seed (a reflink where the filesystem can) and grow it: no full-size copy.
      await copyFile(seed, path, fsc.COPYFILE_FICLONE);
      await truncate(path, bytes);
      await this.d.runner.check(['resize2fs', '-f', path], { signal });
    } else {
      await this.d.runner.check(
        [
          'mkfs.ext4',
          '-q',
          '-F',
          '-T',
          'default',
          '-L',
          'work',
          '-E',
          'root_owner=0:0',
          path,
          `${Math.ceil(bytes / 1024)}k`,
        ],
        { signal },
      );
    }
    const keyFile = `${path}.authorized_keys`;
    await writeFile(keyFile, `${pubKey}\n`, { mode: 0o600 });
    try {
      await injectIntoImage(
        this.d.runner,
        path,
        {
          dirs: [{ path: '/.ssh', mode: 0o700 }],
          files: [{ path: '/.ssh/authorized_keys', hostSource: keyFile, mode: 0o600, uid: 0, gid: 0 }],
        },
        signal,
      );
    } finally {
      await removeTree(keyFile);
    }
  }

  /** Kills the VMM (if any) and leaves the VM in `state` with its disks. */
  private async stopVmm(id: string, state: 'stopped' | 'error'): Promise<void> {
    const vm = this.d.vms.get(id);
    if (!vm) return;
    const { handles } = await this.runtimeHandles(vm);
    if (handles) await this.d.driver.kill(this.vmmHandles(handles));
    await this.clearRuntime(id);
    this.d.vms.update(id, { state, handles: undefined, sshPort: undefined });
    await this.refreshSshConfig();
  }

  /** Removes every trace of a VM: process, sockets, disks, dir, known_hosts entry, row. */
  private async destroy(id: string): Promise<void> {
    const vm = this.d.vms.get(id);
    if (!vm) return;
    await this.stopVmm(id, 'stopped');
    await this.pause('vm-delete');
    await this.d.keys.forget(`${vm.name}.vm`);
    // Row before files: a crash in between leaves a dir without a row, which startup sweeps.
    this.d.vms.delete(id);
    await removeTree(this.d.paths.vmDir(id));
    await this.refreshSshConfig();
    this.d.log.info('VM deleted', { name: vm.name });
  }

  private async clearRuntime(id: string): Promise<void> {
    await removeTree(this.d.paths.qmpSocket(id));
    await removeTree(this.d.paths.agentSocket(id));
    await removeTree(join(this.d.paths.vmDir(id), vmFiles.handles));
  }

  private vmmHandles(h: VmHandles): { pid: number; startTime: number; controlSocket: string } {
    return { pid: h.pid, startTime: h.startTime, controlSocket: h.qmpSocket };
  }

  private async writeHandlesFile(id: string, h: VmHandles): Promise<void> {
    const file = join(this.d.paths.vmDir(id), vmFiles.handles);
    await writeFile(`${file}.tmp`, `${JSON.stringify(h)}\n`);
    await rename(`${file}.tmp`, file);
  }

  /**
   * The VMM handles of a VM (SPEC §2): handles.json, else the store's copy
   * when the file is missing or corrupt. `problem` describes a corrupt file.
   */
  private async runtimeHandles(vm: VmRow): Promise<{ handles: VmHandles | undefined; problem: string | undefined }> {
    const file = await readHandlesFile(join(this.d.paths.vmDir(vm.id), vmFiles.handles));
    if (file.state === 'ok') return { handles: file.handles, problem: undefined };
    if (file.state === 'missing') return { handles: vm.handles, problem: undefined };
    return { handles: vm.handles, problem: handlesProblem(file.problem, vm.handles !== undefined, vm.id) };
  }

  private sshInfoOf(vm: Pick<VmRow, 'name' | 'sshPort'>): SshInfo {
    return {
      name: vm.name,
      host: '127.0.0.1',
      port: vm.sshPort ?? 0,
      user: 'root',
      key: this.d.keys.keyPath,
      known_hosts: this.d.keys.knownHosts,
      host_key_alias: `${vm.name}.vm`,
    };
  }

  private mustGet(id: string): VmRow {
    const vm = this.d.vms.get(id);
    if (!vm) throw new AppError('not_found', `VM ${id} disappeared`);
    return vm;
  }

  private view(v: VmRow): VmView {
    const image = this.d.images.get(v.imageId);
    return {
      id: v.id,
      name: v.name,
      state: v.state,
      image: image?.name ?? v.imageId,
      vcpu: v.vcpu,
      memory_mib: v.memoryMib,
      disk_bytes: v.diskBytes,
      vmm: v.vmm,
      accel: v.accel,
      accel_reason: this.d.accel.reason,
      network_mode: v.networkMode,
      nat: v.nat,
      ssh: v.state === 'running' && v.sshPort ? `127.0.0.1:${v.sshPort}` : null,
      disk_strategy: v.diskStrategy,
      pid: v.handles?.pid ?? null,
      created_at: v.createdAt,
    };
  }

  /** Serialises operations on one VM; different VMs proceed in parallel. */
  private async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.locks.set(id, next);
    try {
      return await next;
    } finally {
      if (this.locks.get(id) === next) this.locks.delete(id);
    }
  }
}
