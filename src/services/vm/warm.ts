import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../../config/config.js';
import { errorMessage, precondition } from '../../errors.js';
import { DISK_SERIALS, macFromId } from '../../guest/bootargs.js';
import type { ImageRow } from '../../store/images.js';
import type { StoredRootDisk, VmHandles, VmRepo, VmRow } from '../../store/vms.js';
import { templateFiles, vmFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import { bangerVersion } from '../../version.js';
import type { VmmDriver, VmmSpec } from '../../vmm/driver.js';
import { qemuArgv, USER_NET } from '../../vmm/qemu/argv.js';
import { loadState, saveState } from '../../vmm/qemu/migrate.js';
import type { Logger, OpContext } from '../context.js';
import { noPause, type Pause } from '../testpause.js';
import { exists, raceAbort, removeTree, syncFile } from '../fsutil.js';
import { KeyedLock } from '../keylock.js';
import type { ImageService } from '../image/service.js';
import type { KernelFiles } from '../kernel/manifest.js';
import type { VmAgents } from './agent.js';
import type { VmBoot } from './boot.js';
import type { VmDisks } from './disks.js';
import { guestTraits } from './guestops.js';
import { killOrphanBuilds } from './warm-orphans.js';
import { BackgroundWarm } from './warm-background.js';
import { giveHostKey, makeHostKey } from './hostkey.js';
import { refreshIdentity, reseedBeforeSave, restoreIdentity } from './identity.js';
import { newVmRow } from './params.js';
import { executePlan, rootDiskPlans } from './rootdisk.js';
import type { RuntimeFiles } from './runtime.js';
import { timed } from './spans.js';
import { consoleQuiet, waitSettled } from './settle.js';
import { copyMemory, ramRoom } from './warm-memory.js';
import { RestoreFacts } from './warm-facts.js';
import { templateKey, vmmShape } from './template-key.js';
import { TemplateStore, type Template } from './templates.js';

/* Warm start (issue 17, SPEC §7.6): templates made by a throwaway boot (`image warm`), and a VM's
   first start restored from the current template of its key. Every step that fails leaves a cold
   boot possible: the caller falls back to one. */

const SAVE_TIMEOUT_MS = 300_000;
const LOAD_TIMEOUT_MS = 120_000;
/**
 * A template is saved once its systemd has run all but the gated units (settle.ts), or without
 * systemd once the console has been quiet this long; at most QUIET_MAX_MS after agent-ready.
 */
const QUIET_MS = 3000;
const QUIET_MAX_MS = 90_000;

export interface WarmDeps {
  paths: Paths;
  config: Config;
  driver: VmmDriver;
  runner: CommandRunner;
  vms: VmRepo;
  imageService: Pick<ImageService, 'ensure' | 'kernelFilesFor' | 'withRootfs'>;
  keys: { ensureKey(): Promise<string> };
  disks: VmDisks;
  boot: VmBoot;
  agents: VmAgents;
  runtime: RuntimeFiles;
  log: Logger;
  accel: 'kvm' | 'tcg';
  /** Test-only pause points (BANGER_TEST_PAUSE). */
  pause?: Pause;
}

/** The spec fields a template is made for: what create decides before any disk exists. */
type Shape = Pick<VmRow, 'vcpu' | 'memoryMib' | 'accel' | 'diskBytes' | 'overlayBytes'>;

/** A saved guest with its disks: a template, or a VM snapshot (`layer`: its root is a shared layer). */
export type Restorable = Pick<Template, 'key' | 'state' | 'root' | 'work'> & {
  /** The guest's memory as a file (a template's): the state holds devices only. Snapshots have none. */
  ram?: string | undefined;
  layer?: { id: string; format: 'qcow2' | 'raw' };
  /** How progress and vm show name it. */
  label?: string;
};

/** What the first start of a VM does: restore from `tpl`, or boot cold for `reason`. */
export interface WarmChoice {
  tpl?: Restorable;
  reason: string;
  /** A failed restore fails the create (a snapshot's processes cannot come from a cold boot). */
  strict?: boolean;
  /** Cold for want of a current template of the VM's key, of this image (a background build may make it). */
  missing?: ImageRow;
}

const labelOf = (t: Restorable): string => t.label ?? `template ${t.key.slice(0, 12)}`;

/** The lifecycle steps firstStart drives (VmService's). */
export interface FirstBoot {
  start(w?: WarmChoice): Promise<void>;
  stop(): Promise<void>;
  /** Makes the cold disks, recording `reason` for `vm show`. */
  cold(reason: string): Promise<void>;
  vm(): VmRow;
}

export class WarmStart {
  readonly store: TemplateStore;
  private readonly flights = new Map<string, Promise<Template>>();
  /** Template builds run one at a time. */
  private readonly buildLock = new KeyedLock();
  private factsOnce: RestoreFacts | undefined;
  /** Aborted at daemon shutdown (halt): every build stops; `building`: the VMM of the one running. */
  private readonly lifetime = new AbortController();
  private building: VmHandles | undefined;

  /** Templates made in the background after a cold boot of the default spec (warm-background.ts). */
  readonly background: BackgroundWarm;
  constructor(private readonly d: WarmDeps) {
    this.store = new TemplateStore(d.paths, d.log);
    this.background = new BackgroundWarm({ config: d.config, warm: this, log: d.log });
  }

  /** Keys of the templates some VM's root disk stands on. */
  refs(): Set<string> {
    const out = new Set<string>();
    for (const v of this.d.vms.list()) if (v.rootDisk?.vars.template) out.add(v.rootDisk.vars.template);
    return out;
  }

  /** Whether a new VM's first start restores, and from which template. */
  async choose(row: VmRow, image: ImageRow, k: KernelFiles, pub: string, cold: boolean): Promise<WarmChoice> {
    if (cold) return { reason: 'cold: asked for (--cold or no start)' };
    if (!this.d.config.warmStart) return { reason: 'cold: warm_start = false' };
    if (this.d.driver.kind !== 'qemu')
      return { reason: 'cold: firecracker VMs boot cold (its snapshots record drive, tap and vsock paths)' };
    if (row.networkMode !== 'user') return { reason: 'cold: bridge-mode VMs boot cold for now' };
    try {
      const key = await this.key(row, image, k, pub);
      const tpl = await this.store.current(key);
      if (tpl) {
        const room = await ramRoom(this.d.paths, row.memoryMib);
        if (room) return { reason: `cold: ${room}` };
        return { tpl, reason: `restored from template ${key.slice(0, 12)}` };
      }
      const stale = (await this.store.list()).filter((t) => t.state && t.meta.image_id === image.id);
      if (stale.length > 0)
        this.d.log.warn('ignoring templates of this image made by another banger, qemu or kernel build or spec', {
          image: image.name,
          templates: stale.map((t) => t.key.slice(0, 12)),
        });
      return { reason: `cold: no current template (\`banger image warm ${image.name}\` makes one)`, missing: image };
    } catch (e) {
      this.d.log.warn('cannot compute the template key; booting cold', { name: row.name, error: String(e) });
      return { reason: `cold: ${errorMessage(e)}` };
    }
  }

  /** A restored VM's disks: a qcow2 overlay over the template's root layer, a copy of its work disk. */
  async disksFrom(vm: VmRow, tpl: Restorable, signal: AbortSignal): Promise<StoredRootDisk> {
    const target = join(this.d.paths.vmDir(vm.id), vmFiles.rootQcow2);
    const size = String(vm.overlayBytes);
    const fmt = tpl.layer?.format ?? 'qcow2';
    await this.d.runner.check(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', fmt, '-b', tpl.root, target, size], {
      signal,
    });
    await this.d.runner.check(['cp', '--reflink=auto', '--sparse=always', tpl.work, this.d.disks.workPath(vm.id)], {
      signal,
    });
    return {
      strategy: 'qcow2-overlay',
      path: target,
      vars: tpl.layer
        ? { layer: tpl.layer.id, warm: `restored from ${labelOf(tpl)}` }
        : { template: tpl.key, warm: `restored from template ${tpl.key.slice(0, 12)}` },
    };
  }

  /**
   * A create's boot: restored from the template when there is one; a restore that fails (qemu
   * refuses the state, the guest does not come up) boots cold on remade disks, with a warning.
   */
  async firstStart(w: WarmChoice, b: FirstBoot, ctx: OpContext): Promise<void> {
    if (!w.tpl) {
      await b.start();
      if (w.missing) this.background.afterColdStart(b.vm(), w.missing);
      return;
    }
    try {
      return await b.start(w);
    } catch (e) {
      if (ctx.signal.aborted || w.strict) throw e;
      const vm = b.vm();
      this.d.log.warn('restore from the template failed; booting cold', { name: vm.name, error: String(e) });
      ctx.progress({ stage: 'restore', message: `restore failed; booting cold (${errorMessage(e)})` });
      await b.stop();
      await removeTree(this.d.disks.workPath(vm.id));
      await removeTree(this.d.disks.root(vm).path);
      await b.cold(`cold: restore from template ${w.tpl.key.slice(0, 12)} failed: ${errorMessage(e)}`);
      return b.start();
    }
  }

  /**
   * A restore's guest RAM: a private copy of the template's memory file (warm-memory.ts), which the
   * VMM maps shared (the caller unlinks it once the state is loaded: the mapping keeps it). No
   * memory file (a snapshot): undefined, the guest's RAM comes in the state.
   */
  async memoryFor(vm: VmRow, tpl: Restorable, ctx: OpContext): Promise<string | undefined> {
    const src = tpl.ram;
    if (src === undefined) return undefined;
    return timed(ctx, 'memory', () => copyMemory(this.d.paths, this.d.runner, vm, src, ctx.signal));
  }

  /** Startup: no restore is in flight, so every guest memory copy left in the RAM dir is an orphan. */
  async sweepMemory(): Promise<void> {
    await removeTree(this.d.paths.ramDir);
  }

  /** Loads the template's guest into a VMM started with `incoming`, runs it, then gives it the VM's identity. */
  async restore(
    vm: VmRow,
    controlSocket: string,
    tpl: Restorable,
    ctx: OpContext,
    guest: { sshd: boolean },
  ): Promise<void> {
    const state = tpl.state;
    if (!state || !(await exists(state))) throw precondition(`${labelOf(tpl)} was superseded or removed`);
    ctx.progress({ stage: 'restore', message: `restoring from ${labelOf(tpl)}` });
    const opts = { ignoreShared: tpl.ram !== undefined };
    await timed(ctx, 'restore', () => loadState(controlSocket, state, LOAD_TIMEOUT_MS, opts));
    await (this.d.pause ?? noPause)('after-restore');
    // The guest resumes at the gate with the template's identity: the VM's own, then the gate opens.
    await this.d.agents.waitBoot(vm, LOAD_TIMEOUT_MS, ctx.signal);
    const net = { ip: USER_NET.guestIp, gateway: USER_NET.gateway, dns: USER_NET.dns, mac: macFromId(vm.id) };
    const input = restoreIdentity(vm.name, net, this.d.config);
    const key = guest.sshd ? await makeHostKey(this.d.runner, this.d.paths.tmpDir, `root@${vm.name}`) : undefined;
    await timed(ctx, 'identity', () =>
      this.d.agents.use(vm, async (c) => {
        // A snapshot's guest runs sshd already (it reloads the new key); a template's waits at the gate.
        if (key) await giveHostKey(c, key, tpl.layer !== undefined);
        await refreshIdentity(c, input, this.d.config);
      }),
    );
  }

  /**
   * `image warm`: the current template of the image at the default VM spec, made when missing by a
   * throwaway boot. Joins a build of the same key in flight; builds run one at a time.
   */
  async warm(imageRef: string, ctx: OpContext): Promise<{ template: Template; built: boolean }> {
    if (this.d.driver.kind !== 'qemu')
      throw precondition(
        `vmm = "${this.d.driver.kind}" has no warm start: firecracker VMs boot cold (its snapshots record drive, tap and vsock paths)`,
        'use vmm = "qemu" for warm starts',
      );
    const image = await this.d.imageService.ensure(imageRef, ctx);
    const k = await this.d.imageService.kernelFilesFor(image, ctx);
    if (!(await guestTraits(image, this.d.log)).agent)
      throw precondition(
        `image "${image.name}" has no guest agent; a template needs one`,
        `refresh it with \`banger image refresh ${image.name}\``,
      );
    const pub = await this.d.keys.ensureKey();
    const shape = this.defaultShape(image);
    const key = await this.key(shape, image, k, pub);
    const cur = await this.store.current(key);
    if (cur) return { template: cur, built: false };
    let flight = this.flights.get(key);
    if (flight) ctx.progress({ stage: 'template', message: `joining the build of ${image.name}'s template in flight` });
    else {
      if (this.lifetime.signal.aborted) throw precondition('the daemon is stopping', 'run it again');
      const bctx = { ...ctx, signal: AbortSignal.any([ctx.signal, this.lifetime.signal]) };
      const f = this.buildLock.run('build', () => this.build(key, shape, image, k, pub, bctx));
      flight = f.finally(() => this.flights.delete(key));
      this.flights.set(key, flight);
    }
    return { template: await raceAbort(flight, ctx.signal), built: true };
  }

  /** Startup: the VMM of a template build a killed daemon left is killed (warm-orphans.ts). */
  killOrphanBuilds(knownIds: ReadonlySet<string>): Promise<void> {
    return killOrphanBuilds(this.d, knownIds);
  }

  /** Daemon shutdown: builds stop, the VMM of the one running is killed; waits (at most `ms`) for their cleanup. */
  async halt(ms = 10_000): Promise<void> {
    this.lifetime.abort();
    if (this.flights.size > 0)
      this.d.log.warn('stopping the template build in flight', { keys: [...this.flights.keys()] });
    if (this.building) await this.d.driver.kill(this.building).catch(() => undefined);
    const done = Promise.allSettled([...this.flights.values()]);
    await Promise.race([done, new Promise((r) => setTimeout(r, ms).unref())]);
  }

  /** Image delete: its templates stop serving and go (VMs of a deleted image cannot exist). */
  async removeForImage(imageId: string): Promise<void> {
    await this.store.removeForImage(imageId, this.refs());
  }

  /** After a VM delete: superseded templates no VM stands on any more go. */
  async collect(): Promise<void> {
    await this.store.collect(this.refs());
  }

  /** The spec `image warm` makes templates for: vm_defaults, this accelerator, the image's overlay size. */
  defaultShape(image: ImageRow): Shape {
    const v = this.d.config.vmDefaults;
    return {
      vcpu: v.vcpu,
      memoryMib: v.memoryMib,
      accel: this.d.accel,
      diskBytes: v.diskSizeBytes,
      overlayBytes: Math.max(v.systemOverlaySizeBytes, image.sizeBytes),
    };
  }

  private async build(
    key: string,
    s: Shape,
    image: ImageRow,
    k: KernelFiles,
    pub: string,
    ctx: OpContext,
  ): Promise<Template> {
    const again = await this.store.current(key);
    if (again) return again;
    if (ctx.signal.aborted) throw precondition('the template build was cancelled', 'run `banger image warm` again');
    const id = randomBytes(16).toString('hex');
    const row = newVmRow({
      ...s,
      id,
      name: `template-${key.slice(0, 8)}`,
      imageId: image.id,
      nat: false,
      vmm: 'qemu',
      networkMode: 'user',
    });
    // In the VMs dir without a row: a daemon killed meanwhile leaves a dir startup sweeps.
    const dir = this.d.paths.vmDir(id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let handles: { pid: number; startTime: number; controlSocket: string } | undefined;
    try {
      ctx.progress({ stage: 'template', message: `making a template of ${image.name} (a throwaway boot)` });
      const plan = rootDiskPlans['qcow2-overlay']({ base: image.rootfsPath, dir, sizeBytes: s.overlayBytes, vmId: id });
      await this.d.imageService.withRootfs(image.id, () => executePlan(this.d.runner, plan, ctx.signal));
      await this.d.disks.makeWork(id, image.workSeedPath, s.diskBytes, pub, ctx.signal);
      const root = { strategy: 'qcow2-overlay' as const, path: plan.path, format: 'qcow2' as const, vars: {} };
      const ram = join(dir, templateFiles.ram);
      const spawned = await this.d.boot.spawn(
        row,
        root,
        k,
        ctx,
        undefined,
        async (h) => {
          handles = this.building = h;
          // For a daemon killed mid-build: the next startup kills this VMM (killOrphanBuilds).
          await this.d.runtime.writeHandles(id, h);
        },
        { template: true, memoryFile: ram },
      );
      handles = spawned.handles;
      await this.d.boot.waitReady(row, spawned.handles, ctx, { agent: true, sshd: false, orderlyShutdown: true });
      // The agent answers early in the boot; what else starts (all but the units behind the identity
      // gate) should be done before the save, or every restore runs it again.
      const settled = await this.d.agents.use(row, (c) => waitSettled(c, QUIET_MAX_MS, ctx.signal));
      if (settled === 'no-systemd') await consoleQuiet(join(dir, vmFiles.console), QUIET_MS, QUIET_MAX_MS, ctx.signal);
      if (settled === 'timeout')
        this.d.log.warn('the template boot did not settle; saving it as it is', { image: image.name });
      await this.d.agents.use(row, (c) => reseedBeforeSave(c, this.d.log));
      await (this.d.pause ?? noPause)('template-save');
      ctx.progress({ stage: 'template', message: 'saving the guest' });
      await saveState(spawned.handles.controlSocket, join(dir, templateFiles.state), SAVE_TIMEOUT_MS, {
        ignoreShared: true,
      });
      await this.d.driver.kill(spawned.handles);
      handles = undefined;
      await syncFile(ram);
      for (const f of [vmFiles.console, vmFiles.vmmLog, `${vmFiles.console}.1`])
        await rm(join(dir, f), { force: true });
      const t = await this.store.install(
        dir,
        {
          key,
          image_id: image.id,
          image_name: image.name,
          vcpu: s.vcpu,
          memory_mib: s.memoryMib,
          disk_bytes: s.diskBytes,
          overlay_bytes: s.overlayBytes,
          created_at: new Date().toISOString(),
        },
        this.refs(),
      );
      this.d.log.info('template made', { image: image.name, key });
      return t;
    } finally {
      this.building = undefined;
      if (handles) await this.d.driver.kill(handles).catch(() => undefined);
      this.d.agents.close(id);
      await rm(this.d.runtime.controlSocket(id), { force: true });
      await rm(this.d.paths.agentSocket(id), { force: true });
      await removeTree(dir);
    }
  }

  /** The kernel and VMM a guest saved now depends on (snapshot records, snapshot-model.ts). */
  restoreFacts(k: KernelFiles): Promise<{ kernel: string; vmm: string }> {
    return (this.factsOnce ??= new RestoreFacts(this.d.config.qemuBin, this.d.runner)).restoreFacts(k);
  }

  /** The template key of a VM of this shape from this image and kernel (template-key.ts). */
  private async key(s: Shape, image: ImageRow, k: KernelFiles, pub: string): Promise<string> {
    const st = await stat(image.rootfsPath);
    const facts = await this.restoreFacts(k);
    const spec: VmmSpec = {
      id: 'template',
      name: 'template',
      vcpu: s.vcpu,
      memoryMib: s.memoryMib,
      accel: s.accel,
      kernelPath: k.kernel,
      initrdPath: k.initrd,
      cmdline: '',
      disks: [
        { id: 'root', path: 'root', format: 'qcow2', readonly: false, serial: DISK_SERIALS.root },
        { id: 'work', path: 'work', format: 'raw', readonly: false, serial: DISK_SERIALS.work },
        ...(k.modulesDisk
          ? [{ id: 'modules', path: 'modules', format: 'raw' as const, readonly: true, serial: DISK_SERIALS.modules }]
          : []),
      ],
      net: { mode: 'user', sshPort: 22, allowOutbound: false, mac: '52:54:00:00:00:00' },
      consoleLog: 'console',
      controlSocket: 'qmp',
      vmmLog: 'vmm',
      agentSocket: 'agent',
      memoryFile: 'ram',
    };
    return templateKey({
      banger: bangerVersion(),
      imageId: image.id,
      rootfs: `${st.size}:${st.mtimeMs}`,
      assetsVersion: image.assetsVersion,
      kernel: facts.kernel,
      qemu: facts.vmm,
      sshKey: pub.trim(),
      overlayBytes: s.overlayBytes,
      diskBytes: s.diskBytes,
      shape: vmmShape(qemuArgv(this.d.config.qemuBin, spec)),
    });
  }
}
