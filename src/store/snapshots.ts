import type { Db } from './db.js';

/* Snapshots of running VMs and the frozen root layers they stand on (migration 9, issue 18). */

export type SnapshotState = 'creating' | 'ready';

/** What a restore must match (services/vm/snapshot-model.ts checks it). */
export interface SnapshotRecord {
  image_id: string;
  /** The kernel's name and file hashes. */
  kernel: string;
  /** `qemu --version` and the binary's hash. */
  vmm: string;
  vcpu: number;
  memory_mib: number;
  disk_bytes: number;
  overlay_bytes: number;
  /** The guest-visible devices (snapshot-model.ts deviceLayout). */
  layout: string;
  accel: string;
}

export interface SnapshotRow {
  id: string;
  name: string;
  state: SnapshotState;
  /** Made by `vm fork`: removed once the fork runs, never listed. */
  internal: boolean;
  vmId: string;
  vmName: string;
  imageId: string;
  layerId: string | undefined;
  record: SnapshotRecord;
  createdAt: string;
}

export interface LayerRow {
  id: string;
  format: 'qcow2' | 'raw';
  /** The layer this one's backing file is (a snapshot of a VM restored from a snapshot). */
  backingLayer: string | undefined;
  imageId: string;
  createdAt: string;
}

interface RawSnap {
  id: string;
  name: string;
  state: SnapshotState;
  internal: number;
  vm_id: string;
  vm_name: string;
  image_id: string;
  layer_id: string | null;
  record: string;
  created_at: string;
}

interface RawLayer {
  id: string;
  format: 'qcow2' | 'raw';
  backing_layer: string | null;
  image_id: string;
  created_at: string;
}

const snap = (r: RawSnap): SnapshotRow => ({
  id: r.id,
  name: r.name,
  state: r.state,
  internal: r.internal === 1,
  vmId: r.vm_id,
  vmName: r.vm_name,
  imageId: r.image_id,
  layerId: r.layer_id ?? undefined,
  record: JSON.parse(r.record) as SnapshotRecord,
  createdAt: r.created_at,
});

const layer = (r: RawLayer): LayerRow => ({
  id: r.id,
  format: r.format,
  backingLayer: r.backing_layer ?? undefined,
  imageId: r.image_id,
  createdAt: r.created_at,
});

export class SnapshotRepo {
  constructor(private readonly db: Db) {}

  list(): SnapshotRow[] {
    return (this.db.prepare('SELECT * FROM snapshots ORDER BY created_at, name').all() as RawSnap[]).map(snap);
  }

  byName(name: string): SnapshotRow | undefined {
    const r = this.db.prepare('SELECT * FROM snapshots WHERE name = ?').get(name) as RawSnap | undefined;
    return r ? snap(r) : undefined;
  }

  get(id: string): SnapshotRow | undefined {
    const r = this.db.prepare('SELECT * FROM snapshots WHERE id = ?').get(id) as RawSnap | undefined;
    return r ? snap(r) : undefined;
  }

  insert(s: SnapshotRow): void {
    this.db
      .prepare(
        `INSERT INTO snapshots (id, name, state, internal, vm_id, vm_name, image_id, layer_id, record, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        s.id,
        s.name,
        s.state,
        s.internal ? 1 : 0,
        s.vmId,
        s.vmName,
        s.imageId,
        s.layerId ?? null,
        JSON.stringify(s.record),
        s.createdAt,
      );
  }

  /** The snapshot is complete: its layer recorded with it, in one transaction. */
  finish(id: string, l: LayerRow): void {
    this.db
      .transaction(() => {
        this.db
          .prepare('INSERT INTO layers (id, format, backing_layer, image_id, created_at) VALUES (?, ?, ?, ?, ?)')
          .run(l.id, l.format, l.backingLayer ?? null, l.imageId, l.createdAt);
        this.db.prepare("UPDATE snapshots SET state = 'ready', layer_id = ? WHERE id = ?").run(l.id, id);
      })
      .immediate();
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(id);
  }

  /** Names of the (listed) snapshots made from an image. */
  namesByImage(imageId: string): string[] {
    return (
      this.db.prepare('SELECT name FROM snapshots WHERE image_id = ? AND internal = 0 ORDER BY name').all(imageId) as {
        name: string;
      }[]
    ).map((r) => r.name);
  }

  layers(): LayerRow[] {
    return (this.db.prepare('SELECT * FROM layers ORDER BY created_at').all() as RawLayer[]).map(layer);
  }

  layer(id: string): LayerRow | undefined {
    const r = this.db.prepare('SELECT * FROM layers WHERE id = ?').get(id) as RawLayer | undefined;
    return r ? layer(r) : undefined;
  }

  deleteLayer(id: string): void {
    this.db.prepare('DELETE FROM layers WHERE id = ?').run(id);
  }
}
