import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SnapshotView } from '../../api/views.js';
import type { Config } from '../../config/config.js';
import { AppError, alreadyExists, badRequest, errorMessage, notFound, precondition } from '../../errors.js';
import type { ImageRepo } from '../../store/images.js';
import type { LayerRow, SnapshotRepo, SnapshotRow } from '../../store/snapshots.js';
import type { VmRepo, VmRow } from '../../store/vms.js';
import { snapshotFiles, vmFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { VmmDriver } from '../../vmm/driver.js';
import { saveState } from '../../vmm/qemu/migrate.js';
import { qmpCommand } from '../../vmm/qemu/qmp.js';
import type { Logger, OpContext } from '../context.js';
import { removeTree } from '../fsutil.js';
import type { ImageService } from '../image/service.js';
import type { Pause } from '../testpause.js';
import type { CreateParams } from './params.js';
import { vmmHandles } from './runtime.js';
import { validateVmName } from './names.js';
import {
  checkRecord,
  deviceLayout,
  recoverySteps,
  restoreMismatches,
  unreferencedLayers,
  validateSnapshotName,
} from './snapshot-model.js';
import type { WarmChoice, WarmStart } from './warm.js';

/* VM snapshots and fork (issue 18, SPEC §7.7): the guest's memory and devices saved through QMP
   migration to an `exec:` target, its root disk frozen as a shared layer outside every VM dir,
   its work disk copied; a VM created from a snapshot restores it (warm.ts's restore path) and
   takes a fresh identity. Layers are collected once no snapshot, VM or layer refers to them. */

const SAVE_TIMEOUT_MS = 300_000;
const RECOVER_MS = 10_000;

export interface SnapshotDeps {
  paths: Paths;
  config: Config;
  driver: VmmDriver;
  runner: CommandRunner;
  vms: VmRepo;
  images: ImageRepo;
  snaps: SnapshotRepo;
  imageService: Pick<ImageService, 'kernelFilesFor'>;
  warm: Pick<WarmStart, 'restoreFacts'>;
  log: Logger;
  pause: Pause;
  accel: string;
  netMode: string;
  resolve(ref: string): VmRow;
  lock<T>(id: string, fn: () => Promise<T>): Promise<T>;
  /** The parent's clock after it runs again (pause.ts). */
  syncClock(vm: VmRow): Promise<void>;
  /** While the parent is stopped for the save, its agent connection is not judged dead. */
  holdAgent(id: string): () => void;
}

/** What VmService.create takes to make a VM from a snapshot. */
export interface RestoreSource {
  choice: WarmChoice;
  imageName: string;
  sizes: { vcpu: number; memoryMib: number; diskBytes: number };
  overlayBytes: number;
}

export function snapshotView(s: SnapshotRow, imageName: string | undefined): SnapshotView {
  return {
    name: s.name,
    vm: s.vmName,
    image: imageName ?? s.imageId,
    vcpu: s.record.vcpu,
    memory_mib: s.record.memory_mib,
    disk_bytes: s.record.disk_bytes,
    created_at: s.createdAt,
  };
}

export class VmSnapshots {
  constructor(private readonly d: SnapshotDeps) {}

  list(): SnapshotView[] {
    return this.d.snaps
      .list()
      .filter((s) => s.state === 'ready' && !s.internal)
      .map((s) => snapshotView(s, this.d.images.get(s.imageId)?.name));
  }

  /** Names of the snapshots that depend on an image (image delete refuses while there are any). */
  usersOfImage(imageId: string): string[] {
    return this.d.snaps.namesByImage(imageId);
  }

  /** `vm snapshot create`: stop, save the guest, freeze the root disk as a layer, copy the work disk, cont. */
  async create(ref: string, name: string, ctx: OpContext, internal = false): Promise<SnapshotRow> {
    validateSnapshotName(name);
    if (this.d.driver.kind !== 'qemu')
      throw precondition(
        `vmm = "${this.d.driver.kind}" has no VM snapshots (firecracker's snapshots record drive, tap and vsock paths)`,
        'use vmm = "qemu" for snapshots and fork',
      );
    if (this.d.snaps.byName(name)) throw alreadyExists(`snapshot "${name}" exists`, 'pick another name');
    const vm = this.d.resolve(ref);
    return this.d.lock(vm.id, async () => {
      const cur = this.d.vms.get(vm.id);
      if (!cur?.handles || cur.state !== 'running')
        throw precondition(
          `VM "${vm.name}" is ${cur?.state ?? 'gone'}; only a running VM can be snapshotted`,
          cur?.state === 'paused' ? `resume it first with \`banger vm resume ${vm.name}\`` : undefined,
        );
      if (cur.networkMode !== 'user')
        throw precondition(`VM "${vm.name}" uses bridge networking; snapshots are for user-mode VMs for now`);
      const { format: rootFormat, path: rootPath } = rootOf(cur);
      const image = this.d.images.get(cur.imageId);
      if (!image) throw precondition(`the image of VM "${vm.name}" is gone`);
      const k = await this.d.imageService.kernelFilesFor(image, ctx);
      const facts = await this.d.warm.restoreFacts(k);
      const id = randomBytes(16).toString('hex');
      const row: SnapshotRow = {
        id,
        name,
        state: 'creating',
        internal,
        vmId: cur.id,
        vmName: cur.name,
        imageId: cur.imageId,
        layerId: undefined,
        record: {
          image_id: cur.imageId,
          ...facts,
          vcpu: cur.vcpu,
          memory_mib: cur.memoryMib,
          disk_bytes: cur.diskBytes,
          overlay_bytes: cur.overlayBytes,
          layout: deviceLayout({ netMode: cur.networkMode, accel: cur.accel, modules: k.modulesDisk !== undefined }),
          accel: cur.accel,
        },
        createdAt: new Date().toISOString(),
      };
      // The row first: a daemon killed from here on leaves a `creating` row that startup undoes (recover).
      this.d.snaps.insert(row);
      const dir = this.d.paths.snapshotDir(id);
      const layerPath = this.d.paths.layerPath(id, rootFormat);
      const sock = cur.handles.controlSocket;
      let stopped = false;
      const release = this.d.holdAgent(cur.id);
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await mkdir(this.d.paths.layersDir, { recursive: true, mode: 0o700 });
        ctx.progress({ stage: 'snapshot', message: `saving the guest of ${cur.name}` });
        stopped = true;
        await saveState(sock, join(dir, snapshotFiles.state), SAVE_TIMEOUT_MS);
        await this.d.pause('snapshot-saved');
        // The VMM flushed and released its disks when the save completed: the copies are consistent.
        ctx.progress({ stage: 'snapshot', message: 'freezing the disks' });
        const cp = ['cp', '--reflink=auto', '--sparse=always'];
        const work = join(this.d.paths.vmDir(cur.id), vmFiles.work);
        await this.d.runner.check([...cp, rootPath, layerPath], { signal: ctx.signal });
        await this.d.runner.check([...cp, work, join(dir, snapshotFiles.work)], { signal: ctx.signal });
        await this.cont(cur, sock);
        stopped = false;
        const layer: LayerRow = {
          id,
          format: rootFormat,
          backingLayer: cur.rootDisk?.vars.layer,
          imageId: cur.imageId,
          createdAt: row.createdAt,
        };
        this.d.snaps.finish(id, layer);
        this.d.log.info('snapshot made', { vm: cur.name, name, internal });
        return { ...row, state: 'ready', layerId: id };
      } catch (e) {
        if (stopped) await this.cont(cur, sock).catch(() => undefined);
        this.d.snaps.delete(id);
        await removeTree(dir);
        await rm(layerPath, { force: true });
        throw e;
      } finally {
        release();
      }
    });
  }

  /** `vm snapshot rm`: the record and its saved guest go; its layer stays while VMs stand on it. */
  async remove(name: string): Promise<{ name: string }> {
    const s = this.d.snaps.byName(name);
    if (!s || s.internal) throw notFound(`no snapshot named "${name}"`, 'run `banger vm snapshot list`');
    await this.drop(s);
    return { name };
  }

  /**
   * What VmService.create needs to make a VM from snapshot `name`; refuses (naming every
   * difference) when this daemon's kernel, VMM, layout or the asked sizes differ from the record.
   */
  async source(name: string, p: CreateParams, ctx: OpContext): Promise<RestoreSource> {
    if (this.d.driver.kind !== 'qemu')
      throw precondition(`vmm = "${this.d.driver.kind}" cannot restore snapshots`, 'use vmm = "qemu"');
    if (p.start === false)
      throw badRequest('a VM from a snapshot starts at once (its memory is the snapshot)', 'drop --no-start');
    const s = this.d.snaps.byName(name);
    if (!s || s.state !== 'ready') throw notFound(`no snapshot named "${name}"`, 'run `banger vm snapshot list`');
    const rec = checkRecord(s.record);
    const image = this.d.images.get(s.imageId);
    if (!image) throw precondition(`the image snapshot "${name}" was made from is gone`);
    const layer = s.layerId ? this.d.snaps.layer(s.layerId) : undefined;
    if (!layer) throw precondition(`the disk layer of snapshot "${name}" is gone`);
    const k = await this.d.imageService.kernelFilesFor(image, ctx);
    const facts = await this.d.warm.restoreFacts(k);
    const askedImage = p.image !== undefined && p.image !== image.name && p.image !== image.id;
    const bad = restoreMismatches(rec, {
      ...facts,
      imageId: askedImage ? `other:${p.image}` : image.id,
      accel: this.d.accel,
      layout: deviceLayout({ netMode: this.d.netMode, accel: this.d.accel, modules: k.modulesDisk !== undefined }),
      vcpu: p.vcpu,
      memory_mib: p.memory_mib,
      disk_bytes: p.disk_bytes,
    });
    if (bad.length > 0)
      throw precondition(
        `snapshot "${name}" cannot be restored here: ${bad.join('; ')}`,
        'a snapshot restores on the banger, qemu, kernel and spec it was made with; boot a VM cold from the image instead',
      );
    const dir = this.d.paths.snapshotDir(s.id);
    return {
      imageName: image.name,
      sizes: { vcpu: rec.vcpu, memoryMib: rec.memory_mib, diskBytes: rec.disk_bytes },
      overlayBytes: rec.overlay_bytes,
      choice: {
        reason: `restored from snapshot ${s.internal ? `of ${s.vmName}` : s.name}`,
        strict: true,
        tpl: {
          key: s.id,
          state: join(dir, snapshotFiles.state),
          root: this.d.paths.layerPath(layer.id, layer.format),
          work: join(dir, snapshotFiles.work),
          layer: { id: layer.id, format: layer.format },
          label: s.internal ? `a snapshot of ${s.vmName}` : `snapshot ${s.name}`,
        },
      },
    };
  }

  /** `vm fork`: an internal snapshot of the VM, a new VM restored from it; the snapshot goes after. */
  async fork<T>(
    ref: string,
    newName: string,
    ctx: OpContext,
    create: (p: CreateParams, src: RestoreSource) => Promise<T>,
  ): Promise<T> {
    validateVmName(newName);
    if (this.d.vms.byName(newName)) throw alreadyExists(`a VM named "${newName}" exists`, 'pick another name');
    const s = await this.create(ref, `fork-${randomBytes(6).toString('hex')}`, ctx, true);
    try {
      const p: CreateParams = { name: newName };
      return await create(p, await this.source(s.name, p, ctx));
    } finally {
      await this.drop(s).catch((e: unknown) =>
        this.d.log.warn('cannot remove the internal snapshot of a fork', { error: errorMessage(e) }),
      );
    }
  }

  /**
   * Startup, before the VMs are reconciled: a snapshot a killed daemon left half made goes, and its
   * VM, stopped by that snapshot, runs again (a pending save cancelled first).
   */
  async recover(): Promise<void> {
    for (const s of this.d.snaps.list().filter((x) => x.state === 'creating')) {
      const vm = this.d.vms.get(s.vmId);
      if (vm?.handles && this.d.driver.kind === 'qemu' && (await this.d.driver.isAlive(vmmHandles(vm.handles)))) {
        this.d.log.warn('resuming a VM a dead daemon left stopped mid-snapshot', { name: vm.name, snapshot: s.name });
        await this.resumeStopped(vm.handles.controlSocket).catch((e: unknown) =>
          this.d.log.error('cannot resume a VM left stopped by a snapshot', { name: vm.name, error: String(e) }),
        );
      }
      this.d.snaps.delete(s.id);
      await removeTree(this.d.paths.snapshotDir(s.id));
      for (const f of ['qcow2', 'raw'] as const) await rm(this.d.paths.layerPath(s.id, f), { force: true });
    }
    await this.collect();
  }

  /** Removes the layers nothing refers to any more (after a VM delete or a snapshot rm). */
  async collect(): Promise<void> {
    const layers = this.d.snaps.layers();
    const vms = this.d.vms.list().map((v) => ({ layer: v.rootDisk?.vars.layer }));
    for (const id of unreferencedLayers(layers, this.d.snaps.list(), vms)) {
      const l = layers.find((x) => x.id === id);
      if (!l) continue;
      this.d.snaps.deleteLayer(id);
      await rm(this.d.paths.layerPath(id, l.format), { force: true });
      this.d.log.info('layer removed (nothing stands on it)', { id });
    }
  }

  private async drop(s: SnapshotRow): Promise<void> {
    this.d.snaps.delete(s.id);
    await removeTree(this.d.paths.snapshotDir(s.id));
    await this.collect();
  }

  private async cont(vm: VmRow, sock: string): Promise<void> {
    await qmpCommand(sock, 'cont');
    await this.d
      .syncClock(vm)
      .catch((e: unknown) =>
        this.d.log.warn('cannot set the guest clock after a snapshot', { name: vm.name, error: String(e) }),
      );
  }

  /** Cancels a pending save and lets the guest run, as recoverySteps says, until nothing is left to do. */
  private async resumeStopped(sock: string): Promise<void> {
    const deadline = Date.now() + RECOVER_MS;
    while (Date.now() < deadline) {
      const run = ((await qmpCommand(sock, 'query-status')) as { status?: string }).status;
      const mig = ((await qmpCommand(sock, 'query-migrate')) as { status?: string }).status;
      const [step] = recoverySteps(run, mig);
      if (!step) return;
      await qmpCommand(sock, step.execute, step.arguments).catch((e: unknown) =>
        this.d.log.warn(`QMP ${step.execute} failed; retrying`, { error: String(e) }),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new AppError('operation_failed', `the VM did not run again within ${RECOVER_MS / 1000} s`);
  }
}

/** A VM's root disk file and its format, when it is one a snapshot can freeze. */
function rootOf(vm: VmRow): { format: 'qcow2' | 'raw'; path: string } {
  const r = vm.rootDisk;
  if (r?.strategy === 'qcow2-overlay') return { format: 'qcow2', path: r.path };
  if (r && r.path.endsWith('.raw')) return { format: 'raw', path: r.path };
  throw precondition(
    `VM "${vm.name}" has a ${r?.strategy ?? 'unknown'} root disk; snapshots need a qcow2 overlay or a raw copy`,
  );
}
