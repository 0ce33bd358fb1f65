import type { BootTimings } from '../api/views.js';
import type { Db } from './db.js';
import type { VmState } from '../services/vm/states.js';

/** Runtime handles of a running VM (mirrored in the VM dir's handles.json). */
export interface VmHandles {
  pid: number;
  /** Process start time (clock ticks since boot, /proc/<pid>/stat field 22): tells a reused pid apart. */
  startTime: number;
  /** The VMM's control socket (qemu's QMP, firecracker's API). */
  controlSocket: string;
  sshPort: number;
}

/** How a VM's root disk was made (services/vm/rootdisk.ts): the path the VMM opens and the values its undo needs. */
export interface StoredRootDisk {
  strategy: string;
  path: string;
  vars: Record<string, string>;
}

/** What `vm workspace prepare` / `vm run PATH` shipped last (the CLI reports it after a ship). */
export interface StoredWorkspace {
  guestPath: string;
  hostPath: string;
  /** The commit the guest checkout is at; null: files without history. */
  head: string | null;
  preparedAt: string;
}

export interface VmRow {
  id: string;
  name: string;
  imageId: string;
  state: VmState;
  vcpu: number;
  memoryMib: number;
  diskBytes: number;
  overlayBytes: number;
  nat: boolean;
  vmm: 'qemu' | 'firecracker';
  accel: 'kvm' | 'tcg';
  networkMode: 'user' | 'bridge';
  sshPort: number | undefined;
  diskStrategy: string;
  /** Undefined for a VM made before plans were stored (schema < 3) until the VM service upgrades it. */
  rootDisk: StoredRootDisk | undefined;
  handles: VmHandles | undefined;
  bootId: string | undefined;
  /** The spans of the last boot (schema 5); kept across stops, replaced by the next boot. */
  bootTimings?: BootTimings | undefined;
  workspace?: StoredWorkspace | undefined;
  createdAt: string;
  updatedAt: string;
}

type Raw = {
  id: string;
  name: string;
  image_id: string;
  state: string;
  vcpu: number;
  memory_mib: number;
  disk_bytes: number;
  overlay_bytes: number;
  nat: number;
  vmm: string;
  accel: string;
  network_mode: string;
  ssh_port: number | null;
  disk_strategy: string;
  /** Absent in a store opened read-only before migration 3. */
  root_disk?: string | null;
  /** Absent in a store opened read-only before migration 5. */
  workspace?: string | null;
  handles: string | null;
  boot_id: string | null;
  /** Absent in a store opened read-only before migration 5. */
  boot_timings?: string | null;
  created_at: string;
  updated_at: string;
};

function parseJson<T>(text: string | null | undefined): T | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

const fromRaw = (r: Raw): VmRow => ({
  id: r.id,
  name: r.name,
  imageId: r.image_id,
  state: r.state as VmState,
  vcpu: r.vcpu,
  memoryMib: r.memory_mib,
  diskBytes: r.disk_bytes,
  overlayBytes: r.overlay_bytes,
  nat: r.nat === 1,
  vmm: r.vmm as VmRow['vmm'],
  accel: r.accel as VmRow['accel'],
  networkMode: r.network_mode as VmRow['networkMode'],
  sshPort: r.ssh_port ?? undefined,
  diskStrategy: r.disk_strategy,
  rootDisk: parseJson<StoredRootDisk>(r.root_disk),
  handles: parseJson<VmHandles>(r.handles),
  bootId: r.boot_id ?? undefined,
  bootTimings: parseJson<BootTimings>(r.boot_timings),
  workspace: parseJson<StoredWorkspace>(r.workspace),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** What update() may change. */
export type VmPatch = Partial<Pick<VmRow, 'sshPort' | 'handles' | 'bootId' | 'diskStrategy' | 'rootDisk'>>;

export class VmRepo {
  constructor(private readonly db: Db) {}

  get(id: string): VmRow | undefined {
    const r = this.db.prepare('SELECT * FROM vms WHERE id = ?').get(id) as Raw | undefined;
    return r && fromRaw(r);
  }

  byName(name: string): VmRow | undefined {
    const r = this.db.prepare('SELECT * FROM vms WHERE name = ?').get(name) as Raw | undefined;
    return r && fromRaw(r);
  }

  list(): VmRow[] {
    return (this.db.prepare('SELECT * FROM vms ORDER BY created_at, name').all() as Raw[]).map(fromRaw);
  }

  namesByImage(imageId: string): string[] {
    return (
      this.db.prepare('SELECT name FROM vms WHERE image_id = ? ORDER BY name').all(imageId) as { name: string }[]
    ).map((r) => r.name);
  }

  countByImage(imageId: string): number {
    return (this.db.prepare('SELECT count(*) AS n FROM vms WHERE image_id = ?').get(imageId) as { n: number }).n;
  }

  /** Inserts a new VM row; a UNIQUE violation on name surfaces as SqliteError (callers map it). */
  insert(v: VmRow): void {
    this.db
      .prepare(
        `INSERT INTO vms (id, name, image_id, state, vcpu, memory_mib, disk_bytes, overlay_bytes, nat, vmm, accel,
           network_mode, ssh_port, disk_strategy, root_disk, handles, boot_id, created_at, updated_at)
         VALUES (@id, @name, @image_id, @state, @vcpu, @memory_mib, @disk_bytes, @overlay_bytes, @nat, @vmm, @accel,
           @network_mode, @ssh_port, @disk_strategy, @root_disk, @handles, @boot_id, @created_at, @updated_at)`,
      )
      .run({
        id: v.id,
        name: v.name,
        image_id: v.imageId,
        state: v.state,
        vcpu: v.vcpu,
        memory_mib: v.memoryMib,
        disk_bytes: v.diskBytes,
        overlay_bytes: v.overlayBytes,
        nat: v.nat ? 1 : 0,
        vmm: v.vmm,
        accel: v.accel,
        network_mode: v.networkMode,
        ssh_port: v.sshPort ?? null,
        disk_strategy: v.diskStrategy,
        root_disk: v.rootDisk ? JSON.stringify(v.rootDisk) : null,
        handles: v.handles ? JSON.stringify(v.handles) : null,
        boot_id: v.bootId ?? null,
        created_at: v.createdAt,
        updated_at: v.updatedAt,
      });
  }

  /** Runtime fields and the root disk; never the state (setState, which only the VM service's transition calls). */
  update(id: string, patch: VmPatch): void {
    this.write(id, patch);
  }

  /** Writes a state (with a patch) as one update. Callers go through the VM service's transition(), which checks the table. */
  setState(id: string, state: VmState, patch: VmPatch = {}): void {
    this.write(id, { ...patch, state });
  }

  private write(id: string, patch: VmPatch & { state?: VmState }): void {
    const cur = this.get(id);
    if (!cur) return;
    const next = { ...cur, ...patch };
    this.db
      .prepare(
        `UPDATE vms SET state = ?, ssh_port = ?, handles = ?, boot_id = ?, disk_strategy = ?, root_disk = ?, updated_at = ?
         WHERE id = ?`,
      )
      .run(
        next.state,
        next.sshPort ?? null,
        next.handles ? JSON.stringify(next.handles) : null,
        next.bootId ?? null,
        next.diskStrategy,
        next.rootDisk ? JSON.stringify(next.rootDisk) : null,
        new Date().toISOString(),
        id,
      );
  }

  /** Records the spans of the VM's last boot (not a state change: updated_at stays). */
  setBootTimings(id: string, t: BootTimings): void {
    this.db.prepare('UPDATE vms SET boot_timings = ? WHERE id = ?').run(JSON.stringify(t), id);
  }

  /** Records the workspace the VM holds now. */
  setWorkspace(id: string, ws: StoredWorkspace): void {
    this.db.prepare('UPDATE vms SET workspace = ? WHERE id = ?').run(JSON.stringify(ws), id);
  }

  /** Marks the VM as used now (auto_stop_stale_after counts from here). */
  touch(id: string, at = new Date()): void {
    this.db.prepare('UPDATE vms SET updated_at = ? WHERE id = ?').run(at.toISOString(), id);
  }

  setSpec(id: string, spec: Pick<VmRow, 'vcpu' | 'memoryMib' | 'diskBytes'>): void {
    this.db
      .prepare('UPDATE vms SET vcpu = ?, memory_mib = ?, disk_bytes = ?, updated_at = ? WHERE id = ?')
      .run(spec.vcpu, spec.memoryMib, spec.diskBytes, new Date().toISOString(), id);
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM vms WHERE id = ?').run(id);
  }
}
