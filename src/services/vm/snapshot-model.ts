import { badRequest } from '../../errors.js';
import { DISK_SERIALS } from '../../guest/bootargs.js';
import type { LayerRow, SnapshotRecord, SnapshotRow } from '../../store/snapshots.js';
import { vmNameProblem } from './names.js';

/* The pure parts of VM snapshots (issue 18): what a snapshot records and a restore must match,
   the guest-visible device layout, the QMP steps, and which shared layers nothing refers to. */

/** Snapshot names follow VM names (a-z, 0-9, -; 1-63 characters). */
export function validateSnapshotName(name: string): void {
  const problem = vmNameProblem(name);
  if (problem)
    throw badRequest(
      `invalid snapshot name ${JSON.stringify(name)}: ${problem}`,
      'snapshot names are 1-63 characters of a-z, 0-9 and "-", e.g. before-upgrade',
    );
}

export interface LayoutInput {
  netMode: string;
  accel: string;
  /** The kernel comes with a modules disk (a third, read-only drive). */
  modules: boolean;
}

/**
 * The devices the guest sees, in a canonical string: a restored guest finds the same disks (by
 * serial, read-only or not) and network device it was saved with. The host side of each (file
 * format, path, forwarded ports) is not part of it: the guest never sees those.
 */
export function deviceLayout(i: LayoutInput): string {
  const disks = [`${DISK_SERIALS.root}:rw`, `${DISK_SERIALS.work}:rw`];
  if (i.modules) disks.push(`${DISK_SERIALS.modules}:ro`);
  return `disks=${disks.join(',')};net=virtio-${i.netMode};accel=${i.accel}`;
}

/** What the daemon would restore with now, and any sizes the caller asked for. */
export interface RestoreTarget {
  kernel: string;
  vmm: string;
  layout: string;
  accel: string;
  imageId: string;
  vcpu?: number | undefined;
  memory_mib?: number | undefined;
  disk_bytes?: number | undefined;
}

/** Every way `target` differs from what the snapshot was made with, in words (empty: restorable). */
export function restoreMismatches(r: SnapshotRecord, t: RestoreTarget): string[] {
  const out: string[] = [];
  if (r.image_id !== t.imageId) out.push('it was made from another image');
  if (r.kernel !== t.kernel) out.push(`the kernel differs (snapshot: ${short(r.kernel)}, now: ${short(t.kernel)})`);
  if (r.vmm !== t.vmm) out.push(`the VMM differs (snapshot: ${short(r.vmm)}, now: ${short(t.vmm)})`);
  if (r.accel !== t.accel) out.push(`the accelerator differs (snapshot: ${r.accel}, now: ${t.accel})`);
  if (r.layout !== t.layout) out.push(`the device layout differs (snapshot: ${r.layout}, now: ${t.layout})`);
  if (t.vcpu !== undefined && t.vcpu !== r.vcpu) out.push(`vcpu ${t.vcpu} was asked for; the snapshot has ${r.vcpu}`);
  if (t.memory_mib !== undefined && t.memory_mib !== r.memory_mib)
    out.push(`memory ${t.memory_mib} MiB was asked for; the snapshot has ${r.memory_mib} MiB`);
  if (t.disk_bytes !== undefined && t.disk_bytes !== r.disk_bytes)
    out.push(`disk size ${t.disk_bytes} bytes was asked for; the snapshot has ${r.disk_bytes}`);
  return out;
}

const short = (s: string): string => (s.length > 60 ? `${s.slice(0, 57)}...` : s);

const MAX_RECORD_VALUE = 4096;

/** A record read back from the store: every field present with its type, sizes positive. */
export function checkRecord(v: unknown): SnapshotRecord {
  if (typeof v !== 'object' || v === null) throw new Error('snapshot record is not an object');
  const o = v as Record<string, unknown>;
  for (const k of ['image_id', 'kernel', 'vmm', 'layout', 'accel'] as const) {
    const s = o[k];
    if (typeof s !== 'string' || s.length === 0 || s.length > MAX_RECORD_VALUE)
      throw new Error(`snapshot record: ${k} is not a non-empty string`);
  }
  for (const k of ['vcpu', 'memory_mib', 'disk_bytes', 'overlay_bytes'] as const) {
    const n = o[k];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0)
      throw new Error(`snapshot record: ${k} is not a positive integer`);
  }
  return o as unknown as SnapshotRecord;
}

/** What a VM stands on: the layer id in its root disk's vars (a VM restored from a snapshot). */
export interface LayerUser {
  layer?: string | undefined;
}

/**
 * The reference count of every layer: snapshots that froze it, VMs whose root overlay stands on
 * it, and layers whose backing file it is.
 */
export function layerRefcounts(
  layers: readonly Pick<LayerRow, 'id' | 'backingLayer'>[],
  snapshots: readonly Pick<SnapshotRow, 'layerId'>[],
  vms: readonly LayerUser[],
): Map<string, number> {
  const n = new Map(layers.map((l) => [l.id, 0]));
  const bump = (id: string | undefined): void => {
    if (id !== undefined && n.has(id)) n.set(id, (n.get(id) ?? 0) + 1);
  };
  for (const s of snapshots) bump(s.layerId);
  for (const v of vms) bump(v.layer);
  for (const l of layers) bump(l.backingLayer);
  return n;
}

/** Layers to remove: those with no reference, then those only the removed ones referred to (a fixpoint). */
export function unreferencedLayers(
  layers: readonly Pick<LayerRow, 'id' | 'backingLayer'>[],
  snapshots: readonly Pick<SnapshotRow, 'layerId'>[],
  vms: readonly LayerUser[],
): string[] {
  let left = [...layers];
  const out: string[] = [];
  for (;;) {
    const counts = layerRefcounts(left, snapshots, vms);
    const free = left.filter((l) => counts.get(l.id) === 0).map((l) => l.id);
    if (free.length === 0) return out;
    out.push(...free);
    left = left.filter((l) => !free.includes(l.id));
  }
}

/** One QMP command: what `qmpCommand(socket, execute, args)` sends. */
export interface QmpStep {
  execute: string;
  arguments?: Record<string, unknown>;
}

/**
 * What resumes the parent of a snapshot a dead daemon left, from the VMM's `query-status` and
 * `query-migrate` status: an active migration is cancelled first; a guest the snapshot stopped
 * (paused, or postmigrate after a completed save) runs again. A running or shut-down guest gets nothing.
 */
export function recoverySteps(runStatus: string | undefined, migrateStatus: string | undefined): QmpStep[] {
  const steps: QmpStep[] = [];
  const activeMigration = ['setup', 'active', 'pre-switchover', 'device', 'wait-unplug'];
  if (migrateStatus !== undefined && activeMigration.includes(migrateStatus)) steps.push({ execute: 'migrate_cancel' });
  if (runStatus !== undefined && ['paused', 'postmigrate', 'finish-migrate'].includes(runStatus))
    steps.push({ execute: 'cont' });
  return steps;
}
