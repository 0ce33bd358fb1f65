import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import type { SshInfo, VmHealth, VmPorts, VmView } from '../../api/methods.js';
import { AppError, precondition } from '../../errors.js';
import type { VmHandles, VmPatch, VmRow } from '../../store/vms.js';
import type { OpContext } from '../context.js';
import { allocatedBytes, removeTree } from '../fsutil.js';
import { KeyedLock } from '../keylock.js';
import type { KernelFiles } from '../kernel/manifest.js';
import { noPause, type Pause } from '../testpause.js';
import { VmAgents } from './agent.js';
import { userNet, VmBoot, type GuestTraits } from './boot.js';
import { BootFailure } from './bootwatch.js';
import { CONSOLE_MAX_BYTES } from './console.js';
import { VmDisks } from './disks.js';
import { recordBoot, timed, withSpans } from './spans.js';
import { checkKernel, checkVmm, createSizes } from './limits.js';
import { applySetParams, checkSetParams } from './resize.js';
import { newVmRow, type CreateParams, type SetParams } from './params.js';
import { checkAgentVm, guestTraits, vmHealth, vmPorts } from './guestops.js';
import { checkNameFree, generateName, insertRow, resolveRef, resolveRefs, validateVmName } from './names.js';
import type { ResolvedRef } from './names.js';
import { capConsoles, consoleLogs, vmStats, vmView, type VmStats } from './observe.js';
import { reconcileVms } from './reconcile.js';
import { RuntimeFiles, vmmHandles } from './runtime.js';
import { notRunning, resumeHint, transition, type VmState } from './states.js';
import { VmPauser } from './pause.js';
import { prune, stopStale, type SweepDeps } from './sweep.js';
import { VmNetworking } from './vmnet.js';
import { PortProxies } from '../network/portproxy.js';
import { VmPublisher } from './publish.js';
import { WarmStart, type WarmChoice } from './warm.js';
import { VmSnapshots, type RestoreSource } from './snapshots.js';
import type { VmServiceDeps } from './service-deps.js';
export type { VmServiceDeps } from './service-deps.js';
export type { Clock } from './boot.js';
export type { CreateParams, SetParams } from './params.js';

/** VM lifecycle: the state machine over disks.ts, boot.ts and runtime.ts; every change goes through transition() (states.ts). */
export class VmService {
  private readonly locks = new KeyedLock();
  private readonly pause: Pause;
  private readonly runtime: RuntimeFiles;
  private readonly disks: VmDisks;
  private readonly boot: VmBoot;
  private readonly agents: VmAgents;
  private readonly net: VmNetworking;
  /** Published ports: checked at create, applied at start, dropped at stop; vm publish/unpublish. */
  readonly publisher: VmPublisher;
  readonly pauser: VmPauser;
  /** Warm start: templates and restores (warm.ts). */
  readonly warm: WarmStart;
  /** Snapshots and fork (snapshots.ts). */
  readonly snapshots: VmSnapshots;

  constructor(private readonly d: VmServiceDeps) {
    this.pause = d.pause ?? noPause;
    this.agents = d.agents ?? new VmAgents({ paths: d.paths, log: d.log });
    this.net = new VmNetworking(d.bridge, d.config, d.log);
    this.runtime = new RuntimeFiles({ ...d, net: this.net, socketSuffix: d.driver.capabilities.controlSocket.suffix });
    this.disks = new VmDisks(d);
    this.publisher = new VmPublisher({
      ...d,
      proxies: new PortProxies(),
      address: (v) => this.net.address(v),
      resolve: (r) => this.resolve(r),
      lock: (id, fn) => this.withLock(id, fn),
    });
    this.pauser = new VmPauser({
      ...d,
      agents: this.agents,
      resolve: (r) => this.resolve(r),
      lock: (id, fn) => this.withLock(id, fn),
      view: (v) => this.view(v),
    });
    this.boot = new VmBoot({
      ...d,
      runtime: this.runtime,
      agents: this.agents,
      sshWaitTimeoutMs: d.config.sshWaitTimeoutMs,
      templateBoot: d.config.testTemplateBoot,
    });
    this.warm = new WarmStart({ ...d, ...this, accel: d.accel.accel });
    this.snapshots = new VmSnapshots({
      ...d,
      warm: this.warm,
      pause: this.pause,
      accel: d.accel.accel,
      netMode: this.net.mode,
      resolve: (r) => this.resolve(r),
      lock: (id, fn) => this.withLock(id, fn),
      syncClock: (vm) => this.pauser.syncClock(vm),
      holdAgent: (id) => this.agents.hold(id),
    });
  }

  list(): VmView[] {
    return this.d.vms.list().map((v) => this.view(v));
  }

  /** A name, an id, or a unique id prefix. */
  resolve(ref: string): VmRow {
    return resolveRef(this.d.vms, ref);
  }

  /** One VM, with any problem found in its runtime files (a corrupt handles.json) and its own bytes on disk. */
  async show(ref: string): Promise<VmView> {
    const vm = this.resolve(ref);
    const { problem } = await this.runtime.handles(vm);
    // Its dir only: the image and the shared layers it stands on are not its own.
    const v = { ...this.view(vm), own_bytes: await allocatedBytes(this.d.paths.vmDir(vm.id)) };
    return problem === undefined ? v : { ...v, problems: [problem] };
  }

  /** `src`: restored from a snapshot (vm fork; else from p.from_snapshot), its sizes and image. */
  async create(p: CreateParams, opCtx: OpContext, src?: RestoreSource): Promise<VmView> {
    const ctx = withSpans(opCtx);
    const cfg = this.d.config;
    // An omitted name is generated; an empty one is a mistake (SPEC §4).
    if (p.name !== undefined) validateVmName(p.name);
    src ??= p.from_snapshot === undefined ? undefined : await this.snapshots.source(p.from_snapshot, p, ctx);
    const { vcpu, memoryMib, diskBytes } = src?.sizes ?? createSizes(p, cfg, this.d.host);
    checkVmm(this.d.driver, this.d.accel, cfg.networkMode);
    checkNameFree(this.d.vms, p.name);

    const published = await this.publisher.checkNew(p.publish);
    const image = await timed(ctx, 'image', () =>
      this.d.imageService.ensure(src?.imageName ?? p.image ?? cfg.defaultImageName, ctx),
    );
    const kernel = await timed(ctx, 'kernel', () => this.d.imageService.kernelFilesFor(image, ctx));
    checkKernel(kernel, this.d.driver.kind);
    const pub = await this.d.keys.ensureKey();

    const id = randomBytes(16).toString('hex');
    const row = newVmRow({
      id,
      name: p.name ?? generateName((n) => this.d.vms.byName(n) !== undefined),
      imageId: image.id,
      vcpu,
      memoryMib,
      diskBytes,
      overlayBytes: src?.overlayBytes ?? Math.max(cfg.vmDefaults.systemOverlaySizeBytes, image.sizeBytes),
      nat: p.nat ?? false,
      vmm: this.d.driver.kind,
      accel: this.d.accel.accel,
      networkMode: this.net.mode,
    });
    insertRow(this.d.vms, row);
    return this.withLock(id, async () => {
      try {
        ctx.progress({ stage: 'disks', message: 'preparing disks' });
        await mkdir(this.d.paths.vmDir(id), { recursive: true, mode: 0o700 });
        this.net.allocate(row);
        this.d.ports.add(id, published);
        const warm =
          src?.choice ?? (await this.warm.choose(row, image, kernel, pub, p.cold === true || p.start === false));
        const cold = async (reason: string): Promise<void> => {
          const rootDisk = await timed(ctx, 'root disk', () =>
            this.d.imageService.withRootfs(image.id, () => this.disks.makeRoot(row, image.rootfsPath, ctx.signal)),
          ); // under the image's lease
          const vars = { ...rootDisk.vars, warm: reason };
          this.d.vms.update(id, { rootDisk: { ...rootDisk, vars }, diskStrategy: rootDisk.strategy });
          await timed(ctx, 'work disk', () => this.disks.makeWork(id, image.workSeedPath, diskBytes, pub, ctx.signal));
        };
        if (warm.tpl) this.d.vms.update(id, { rootDisk: await this.warm.disksFrom(row, warm.tpl, ctx.signal) });
        else await cold(warm.reason);
        // With a boot the row stays `creating` until the guest is up: a daemon killed before then
        // leaves a create that never finished, which the next start rolls back (reconcile).
        const start = (w?: WarmChoice): Promise<void> => this.startLocked(id, kernel, ctx, w, p.ready);
        const stop = (): Promise<void> => this.stopVmm(id, 'stopped');
        if (p.start ?? true) await this.warm.firstStart(warm, { start, stop, cold, vm: () => this.mustGet(id) }, ctx);
        else this.transition(id, 'stopped');
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

  /** The name of an image by id (a snapshot's view). */
  imageName(id: string): string | undefined {
    return this.d.images.get(id)?.name;
  }

  /** Resolves several refs against one snapshot of the VM table (multi-target verbs). */
  resolveMany(refs: readonly string[]): ResolvedRef[] {
    return resolveRefs(this.d.vms, refs);
  }

  async start(ref: string, opCtx: OpContext): Promise<VmView> {
    const ctx = withSpans(opCtx);
    const vm = this.resolve(ref);
    return this.withLock(vm.id, async () => {
      const cur = this.mustGet(vm.id);
      if (cur.state === 'running') return this.view(cur);
      if (cur.state === 'paused') throw precondition(`VM "${cur.name}" is paused`, resumeHint(cur.name));
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

  /** Graceful first (the guest agent's shutdown, else ssh `sync; poweroff`), then forceful after STOP_GRACE_MS (SPEC §4). */
  async stop(ref: string, _ctx: OpContext): Promise<VmView> {
    const vm = this.resolve(ref);
    return this.withLock(vm.id, async () => {
      const cur = this.mustGet(vm.id);
      if (cur.state === 'stopped') return this.view(cur);
      if (cur.state === 'running' || cur.state === 'paused') {
        // A paused VM runs again first and stops as a running one does; killed at once when it cannot (pause.ts).
        const graceful = cur.state === 'running' || (await this.pauser.thaw(cur));
        this.transition(cur.id, 'stopping');
        if (cur.handles && graceful) await this.boot.powerOff(cur, vmmHandles(cur.handles), await this.guest(cur));
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
      const { handles: h } = await this.runtime.handles(cur);
      if (h) await this.d.driver.kill(vmmHandles(h), signal);
      await this.stopVmm(cur.id, 'stopped');
      return this.view(this.mustGet(cur.id));
    });
  }

  /** Changes vcpu/memory/disk of a stopped VM; the work disk only grows (resize.ts). */
  async set(ref: string, p: SetParams, ctx: OpContext): Promise<VmView> {
    const vm = this.resolve(ref);
    checkSetParams(p, this.d.host);
    return this.withLock(vm.id, async () => {
      await applySetParams({ vms: this.d.vms, disks: this.disks }, this.mustGet(vm.id), p, ctx.signal);
      return this.view(this.mustGet(vm.id));
    });
  }

  /** auto_stop_stale_after: stops running VMs no banger command touched for that long (never a paused one). */
  stopStale(maxIdleMs: number, now = Date.now()): Promise<string[]> {
    return stopStale(this.sweeps, maxIdleMs, now);
  }

  /** Deletes every VM that is stopped or failed (never a running or paused one); returns their names. */
  prune(ctx: OpContext): Promise<{ deleted: string[] }> {
    return prune(this.sweeps, ctx);
  }

  async delete(ref: string, _ctx: OpContext): Promise<{ name: string }> {
    const vm = this.resolve(ref);
    await this.withLock(vm.id, () => this.destroy(vm.id));
    return { name: vm.name };
  }

  sshInfo(ref: string): SshInfo {
    const vm = this.resolve(ref);
    this.d.vms.touch(vm.id);
    if (vm.state !== 'running' || vm.sshPort === undefined) throw notRunning(vm, 'ssh');
    return this.runtime.sshInfo(vm);
  }

  /** The tail of the console log (LOGS_TAIL_BYTES unless asked for less; never more than CONSOLE_MAX_BYTES). */
  async logs(ref: string, tailBytes?: number): Promise<{ text: string; path: string; size: number }> {
    return consoleLogs(this.d.paths, this.resolve(ref), tailBytes);
  }

  /** Cuts back the console log of every VM whose VMM may be writing it (the daemon calls this every few seconds). */
  async capConsoles(maxBytes = CONSOLE_MAX_BYTES): Promise<string[]> {
    return capConsoles(this.d.paths, this.d.vms.list(), this.d.log, maxBytes);
  }

  /** VMM process cpu/memory from /proc, guest uptime from the agent (else over ssh). */
  async stats(ref: string): Promise<VmStats> {
    return vmStats(this.resolve(ref), this.runtime, this.d.runner, this.agents, (vm) => this.guest(vm));
  }

  /** The guest agent's health; an error when it does not answer. */
  async health(ref: string): Promise<VmHealth> {
    return vmHealth(this.agentVm(ref, 'vm health'), this.agents);
  }

  /** The guest's listening sockets, from its agent, with where the host reaches them. */
  async ports(ref: string): Promise<VmPorts> {
    const vm = this.agentVm(ref, 'vm ports');
    return vmPorts(vm, this.agents, userNet(this.d.driver), this.publisher.list(vm.id));
  }

  /** Startup, after a clean stop or a crash: see reconcile.ts. */
  async reconcile(): Promise<void> {
    await this.snapshots.recover();
    await reconcileVms({
      ...this.d,
      runtime: this.runtime,
      disks: this.disks,
      transition: (id, to, patch) => this.transition(id, to, patch),
      stopVmm: (id, state) => this.stopVmm(id, state),
      destroy: (id) => this.destroy(id),
    });
    await this.net.startup(this.d.vms.list());
    await this.publisher.startup(this.d.vms.list());
  }

  /** The one place a VM's state is written (states.ts checks the move). */
  private transition(id: string, to: VmState, patch: VmPatch = {}): void {
    transition(this.d.vms, id, to, patch);
  }

  private async startLocked(
    id: string,
    k: KernelFiles,
    ctx: OpContext,
    w?: WarmChoice,
    ready: 'ssh' | 'agent' = 'ssh',
  ): Promise<void> {
    const vm = this.mustGet(id);
    // A create's first boot stays `creating` (see create); any other start moves to `starting`.
    if (vm.state !== 'creating') this.transition(id, 'starting');
    const root = this.disks.root(vm);
    await this.publisher.up(vm);
    const bridged = await timed(ctx, 'network', () => this.net.up(vm, ctx.signal));
    const onSpawn = async (h: VmHandles): Promise<void> => {
      // Recorded the moment the process exists, before the VMM opens its control socket: a daemon
      // killed from here on leaves a VMM that reconcile can find by pid and start time.
      await this.runtime.writeHandles(id, h);
      this.d.vms.update(id, { handles: h, sshPort: h.sshPort, bootId: randomUUID() });
      await this.pause('after-spawn');
    };
    // A template's memory: a copy the VMM maps; unlinked once loaded (the mapping keeps it till qemu exits).
    const memoryFile = w?.tpl ? await this.warm.memoryFor(vm, w.tpl, ctx) : undefined;
    let handles: VmHandles;
    try {
      ({ handles } = await this.boot.spawn(vm, root, k, ctx, bridged, onSpawn, {
        incoming: w?.tpl !== undefined,
        memoryFile,
      }));
      if (w?.tpl) await this.warm.restore(vm, handles.controlSocket, w.tpl, ctx, await this.guest(vm));
    } finally {
      if (memoryFile) await rm(memoryFile, { force: true });
    }
    let uptime: number | undefined;
    try {
      const guest = await this.guest(vm);
      // ready 'agent': a guest with an agent is ready when it answers; its sshd finishes starting meanwhile.
      const wait = ready === 'agent' && guest.agent ? { ...guest, sshd: false } : guest;
      uptime = await this.boot.waitReady(vm, handles, ctx, wait, w?.tpl !== undefined);
    } catch (e) {
      // An ssh timeout keeps the VM running for inspection (SPEC §4).
      if (e instanceof BootFailure && e.kind === 'ssh_timeout') this.transition(id, 'running');
      throw e;
    }
    this.transition(id, 'running');
    await this.runtime.refreshSshConfig();
    await recordBoot(this.d, id, ctx, uptime);
  }

  /** Kills the VMM (if any) and leaves the VM in `state` with its disks. */
  private async stopVmm(id: string, state: 'stopped' | 'error'): Promise<void> {
    const vm = this.d.vms.get(id);
    if (!vm) return;
    this.agents.close(id);
    const { handles } = await this.runtime.handles(vm);
    if (handles) await this.d.driver.kill(vmmHandles(handles));
    await this.net.down(vm);
    await this.publisher.down(id);
    await this.runtime.clear(id);
    const patch = { handles: undefined, sshPort: undefined };
    // Already there (a kill or delete of a stopped VM): no move, only the runtime fields are cleared.
    if (vm.state === state) this.d.vms.update(id, patch);
    else this.transition(id, state, patch);
    await this.runtime.refreshSshConfig();
  }

  /** Removes every trace of a VM: process, sockets, root-disk plan, disks, dir, known_hosts entry, row. */
  private async destroy(id: string): Promise<void> {
    const vm = this.d.vms.get(id);
    if (!vm) return;
    await this.stopVmm(id, 'stopped');
    await this.net.release(vm);
    await this.pause('vm-delete');
    await this.d.keys.forget(`${vm.name}.vm`);
    // The plan's undo (devices it set up) before the row: a crash in between runs it again next time.
    await this.disks.undoRoot(vm, this.d.images.get(vm.imageId)?.rootfsPath);
    // Row before files: a crash in between leaves a dir without a row, which startup sweeps.
    this.d.vms.delete(id);
    await removeTree(this.d.paths.vmDir(id));
    await this.runtime.refreshSshConfig();
    await this.warm.collect();
    await this.snapshots.collect();
    this.d.log.info('VM deleted', { name: vm.name });
  }

  /** A running VM whose image has the agent, or a precondition error saying what `what` needs. */
  private agentVm(ref: string, what: string): VmRow {
    const vm = this.resolve(ref);
    checkAgentVm(vm, this.d.images.get(vm.imageId), what);
    return vm;
  }

  /** The lifecycle steps the sweeps (sweep.ts) run. */
  private get sweeps(): SweepDeps {
    return { ...this.d, stop: (id, ctx) => this.stop(id, ctx), delete: (id, ctx) => this.delete(id, ctx) };
  }

  private readonly guest = (vm: VmRow): Promise<GuestTraits> => guestTraits(this.d.images.get(vm.imageId), this.d.log);

  private mustGet(id: string): VmRow {
    const vm = this.d.vms.get(id);
    if (!vm) throw new AppError('not_found', `VM ${id} disappeared`);
    return vm;
  }

  private view(v: VmRow): VmView {
    const extras = { ip: this.net.address(v), vmm: this.d.vmm, published: this.publisher.view(v.id) };
    return vmView(v, this.d.images.get(v.imageId)?.name, this.d.accel.reason, extras);
  }

  /** Serialises operations on one VM; different VMs proceed in parallel. */
  private withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }
}
