import { constants as fsc } from 'node:fs';
import { copyFile, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError } from '../../errors.js';
import { injectIntoImage } from '../../ext4/inject.js';
import type { StoredRootDisk, VmRow } from '../../store/vms.js';
import { vmFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { DiskFormat, VmmCapabilities } from '../../vmm/driver.js';
import type { Logger } from '../context.js';
import { exists, removeTree } from '../fsutil.js';
import {
  isRootStrategy,
  makeRootDisk,
  rootDiskFormat,
  rootDiskPlans,
  strategyOrder,
  undoPlan,
  type RootStrategy,
} from './rootdisk.js';

/**
 * resize2fs zeroes the inode tables of the groups it adds (and marks them so) instead of leaving
 * them to the guest kernel's ext4lazyinit thread, which under emulation competed with the boot for
 * the vCPU (docs/boot-profile.md, round 3). The added groups lie in the file's new sparse tail, so
 * zeroing is a hole punch: no data written, the file stays sparse. (Not mkfs.ext4's lazy_itable_init=0
 * for an image without a seed: it allocates its inode tables, ~200 MiB for 8 GiB, per VM.)
 */
export const ZEROED_ITABLES_ENV = { RESIZE2FS_FORCE_ITABLE_INIT: '1' } as const;

export interface DisksDeps {
  paths: Paths;
  runner: CommandRunner;
  /** The VMM: which disk formats it reads. */
  driver: { readonly capabilities: Pick<VmmCapabilities, 'diskFormats'> };
  log: Logger;
}

/** The root disk of a VM as the VMM opens it. */
export interface RootDisk {
  strategy: RootStrategy;
  path: string;
  format: DiskFormat;
  vars: Record<string, string>;
}

/**
 * A VM's disks: the root disk (a copy-on-write plan over the image, SPEC §7.1,
 * recorded per VM so start opens its path and delete runs its undo) and the
 * /root work disk.
 */
export class VmDisks {
  constructor(private readonly d: DisksDeps) {}

  /** Makes the root disk by the best strategy that works here; the caller records the result. */
  async makeRoot(vm: Pick<VmRow, 'id' | 'overlayBytes'>, base: string, signal: AbortSignal): Promise<StoredRootDisk> {
    // Device-mapper is never chosen automatically yet: it needs privileges and dm, which these hosts lack.
    const order = strategyOrder({
      vmmReadsQcow2: this.d.driver.capabilities.diskFormats.includes('qcow2'),
      dmUsable: false,
    });
    const { plan, vars } = await makeRootDisk(
      this.d.runner,
      { base, dir: this.d.paths.vmDir(vm.id), sizeBytes: vm.overlayBytes, vmId: vm.id },
      order,
      signal,
    );
    return { strategy: plan.strategy, path: plan.path, vars };
  }

  /** The recorded root disk, or for a VM from before plans were recorded, the one its old layout implies. */
  root(vm: Pick<VmRow, 'id' | 'name' | 'diskStrategy' | 'rootDisk'>): RootDisk {
    const rec = vm.rootDisk ?? legacyRootDisk(vm, this.d.paths.vmDir(vm.id));
    const strategy = rec.strategy;
    if (!isRootStrategy(strategy))
      throw new AppError('precondition', `VM "${vm.name}" has a root disk of unknown kind "${strategy}"`, {
        hint: 'it was made by a newer banger; use that one, or delete the VM',
      });
    return { strategy, path: rec.path, format: rootDiskFormat(strategy), vars: rec.vars };
  }

  /**
   * Upgrades a VM made before root-disk plans were recorded: its raw copy was
   * named root.qcow2 and becomes root.raw (a rename: a running VMM keeps its open
   * file). Returns the plan to record, or undefined when there is nothing to do.
   * Safe to repeat: a crash between the rename and the record is finished next time.
   */
  async upgradeLegacy(vm: VmRow): Promise<StoredRootDisk | undefined> {
    if (vm.rootDisk) return undefined;
    const dir = this.d.paths.vmDir(vm.id);
    const old = join(dir, vmFiles.rootQcow2);
    const raw = join(dir, vmFiles.rootRaw);
    if (vm.diskStrategy !== 'qcow2-overlay' && (await exists(old)) && !(await exists(raw))) {
      await rename(old, raw);
      this.d.log.info('renamed the raw root disk of a VM made by an older banger', { name: vm.name, path: raw });
    }
    return legacyRootDisk(vm, dir, await exists(raw));
  }

  /**
   * Runs the undo of the recorded root-disk plan (VM delete): its files, loop and
   * dm devices go. Nothing is recorded for a VM whose root disk was never made.
   */
  async undoRoot(vm: VmRow, base: string | undefined): Promise<void> {
    if (!vm.rootDisk) return;
    const root = this.root(vm);
    const plan = rootDiskPlans[root.strategy]({
      base: base ?? '',
      dir: this.d.paths.vmDir(vm.id),
      sizeBytes: vm.overlayBytes,
      vmId: vm.id,
    });
    await undoPlan(this.d.runner, plan, root.vars);
  }

  /** The /root disk: the image's seed grown to `bytes` (or a fresh ext4), holding the VM's authorized key. */
  async makeWork(
    id: string,
    seed: string | undefined,
    bytes: number,
    pubKey: string,
    signal: AbortSignal,
  ): Promise<void> {
    const path = this.workPath(id);
    if (seed && (await exists(seed))) {
      // Copy the small seed (a reflink where the filesystem can) and grow it: no full-size copy.
      await copyFile(seed, path, fsc.COPYFILE_FICLONE);
      await truncate(path, bytes);
      await this.d.runner.check(['resize2fs', '-f', path], { signal, env: ZEROED_ITABLES_ENV });
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

  /** Grows the work disk of a stopped VM offline. */
  async growWork(id: string, bytes: number, signal: AbortSignal): Promise<void> {
    const work = this.workPath(id);
    // The guest may have been killed with a dirty journal: replay it before resizing offline.
    await this.d.runner.run(['e2fsck', '-fy', work], { signal });
    await truncate(work, bytes);
    await this.d.runner.check(['resize2fs', work], { signal, env: ZEROED_ITABLES_ENV });
  }

  workPath(id: string): string {
    return join(this.d.paths.vmDir(id), vmFiles.work);
  }
}

/**
 * The root disk of a VM made before plans were recorded: every strategy then
 * made root.qcow2 in the VM dir, the raw ones too; `renamed` once upgradeLegacy
 * moved a raw one to root.raw. No device or loop was ever used (no vars).
 */
function legacyRootDisk(vm: Pick<VmRow, 'diskStrategy'>, dir: string, renamed = false): StoredRootDisk {
  const raw = vm.diskStrategy !== 'qcow2-overlay';
  return {
    strategy: vm.diskStrategy,
    path: join(dir, raw && renamed ? vmFiles.rootRaw : vmFiles.rootQcow2),
    vars: {},
  };
}
