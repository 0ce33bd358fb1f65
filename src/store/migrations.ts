/**
 * Forward-only schema migrations. Index i holds the SQL that moves the schema
 * from version i to i+1; the applied version lives in PRAGMA user_version.
 * Never edit a shipped entry: append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE kernels (
    name        TEXT PRIMARY KEY,
    distro      TEXT NOT NULL,
    arch        TEXT NOT NULL,
    version     TEXT NOT NULL,
    format      TEXT NOT NULL,
    source      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    dir         TEXT NOT NULL,
    has_initrd  INTEGER NOT NULL,
    has_modules INTEGER NOT NULL,
    module_count INTEGER NOT NULL,
    created_at  TEXT NOT NULL
  );
  CREATE TABLE images (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    source      TEXT NOT NULL,
    managed     INTEGER NOT NULL,
    dir         TEXT NOT NULL,
    rootfs_path TEXT NOT NULL,
    work_seed_path TEXT,
    kernel_name TEXT NOT NULL,
    distro      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    assets_version INTEGER NOT NULL,
    created_at  TEXT NOT NULL
  );
  CREATE TABLE vms (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    image_id    TEXT NOT NULL REFERENCES images(id),
    state       TEXT NOT NULL,
    vcpu        INTEGER NOT NULL,
    memory_mib  INTEGER NOT NULL,
    disk_bytes  INTEGER NOT NULL,
    overlay_bytes INTEGER NOT NULL,
    nat         INTEGER NOT NULL,
    vmm         TEXT NOT NULL,
    accel       TEXT NOT NULL,
    network_mode TEXT NOT NULL,
    ssh_port    INTEGER,
    disk_strategy TEXT NOT NULL,
    handles     TEXT,
    boot_id     TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
  );
  CREATE TABLE operations (
    id          TEXT PRIMARY KEY,
    method      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    status      TEXT NOT NULL,
    error       TEXT
  );
  `,
  // 2: what a kernel needs and which VMMs can boot it (kernel compatibility checks).
  `
  ALTER TABLE kernels ADD COLUMN traits TEXT NOT NULL DEFAULT '{}';
  `,
  // 3: the VMM's control socket is no longer QMP by name (handles.controlSocket), and each VM
  // records its root-disk plan ({strategy, path, vars}: what to open, what delete undoes).
  // Rows from before have no plan: the VM service derives it from disk_strategy (services/vm/disks.ts).
  `
  UPDATE vms
    SET handles = json_set(json_remove(handles, '$.qmpSocket'), '$.controlSocket', json_extract(handles, '$.qmpSocket'))
    WHERE handles IS NOT NULL AND json_valid(handles) AND json_type(handles, '$.qmpSocket') = 'text';
  ALTER TABLE vms ADD COLUMN root_disk TEXT;
  `,
  // 4: guest IPs of bridge-mode VMs (store/ips.ts): UNIQUE so no two VMs hold one, gone with their VM.
  `
  CREATE TABLE vm_ips (
    vm_id        TEXT PRIMARY KEY REFERENCES vms(id) ON DELETE CASCADE,
    ip           TEXT NOT NULL UNIQUE,
    allocated_at TEXT NOT NULL
  );
  `,
  // 5: published ports (store/ports.ts): UNIQUE host side, so no two VMs publish one ADDR:PORT/proto; gone with their VM.
  `
  CREATE TABLE vm_ports (
    vm_id       TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    protocol    TEXT NOT NULL,
    address     TEXT NOT NULL,
    host_port   INTEGER NOT NULL,
    guest_port  INTEGER NOT NULL,
    UNIQUE (address, host_port, protocol)
  );
  `,
  // 6: the spans of each VM's last boot (JSON BootTimings, services/vm/spans.ts), shown by `vm show`.
  `
  ALTER TABLE vms ADD COLUMN boot_timings TEXT;
  `,
  // 7: the VM's workspace ({guestPath, hostPath, head, preparedAt}: what `vm workspace prepare` shipped last).
  `
  ALTER TABLE vms ADD COLUMN workspace TEXT;
  `,
  // 9: VM lifetimes (store/lifetimes.ts: ttl, idle_ttl, rm; enforced by services/vm/reaper.ts) and the
  // idempotency keys of vm.create (a retry with the same key returns the same VM for 24 h).
  `
  CREATE TABLE vm_lifetimes (
    vm_id        TEXT PRIMARY KEY REFERENCES vms(id) ON DELETE CASCADE,
    deadline_at  TEXT,
    idle_ttl_ms  INTEGER,
    rm           INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    vm_id        TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL
  );
  `,
  // 9 (issue 18; the 9th entry, user_version 9): snapshots of running VMs (services/vm/snapshots.ts) and the frozen root-disk
  // layers they and the VMs restored from them stand on (outside every VM dir, collected when no
  // snapshot, VM or other layer refers to them). A snapshot row in state `creating` is one a daemon
  // died making: startup resumes its parent and removes it.
  `
  CREATE TABLE layers (
    id            TEXT PRIMARY KEY,
    format        TEXT NOT NULL,
    backing_layer TEXT,
    image_id      TEXT NOT NULL,
    created_at    TEXT NOT NULL
  );
  CREATE TABLE snapshots (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL,
    internal    INTEGER NOT NULL,
    vm_id       TEXT NOT NULL,
    vm_name     TEXT NOT NULL,
    image_id    TEXT NOT NULL,
    layer_id    TEXT,
    record      TEXT NOT NULL,
    created_at  TEXT NOT NULL
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** `bangerd --check-migrations` result: 0 compatible, 1 needs migration, 2 incompatible (newer). */
export function migrationStatus(current: number): 0 | 1 | 2 {
  if (current === SCHEMA_VERSION) return 0;
  return current < SCHEMA_VERSION ? 1 : 2;
}
