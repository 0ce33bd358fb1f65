/*
 * GENERATED from src/api (views.ts, proc-contract.ts) by src/api/sdk-types.ts: do not edit.
 * Rewrite with `npm run build && npm run gen:sdk-types`; a unit test fails on drift.
 */

/*
 * The result shapes of the contract's methods (api/methods.ts): what the
 * daemon returns and the CLI renders.
 */

/** What `vm.list` / `vm.show` / `vm.create` return for one VM. */
export interface VmView {
  id: string;
  name: string;
  state: string;
  image: string;
  vcpu: number;
  memory_mib: number;
  disk_bytes: number;
  vmm: string;
  /** Why the daemon runs this VMM (vmm = "auto" settles at daemon start), e.g. "firecracker: binary not found". */
  vmm_reason?: string;
  accel: string;
  accel_reason?: string;
  network_mode: string;
  nat: boolean;
  /** Guest address in bridge mode (held from create to delete); null in user mode. */
  ip: string | null;
  ssh: string | null;
  disk_strategy: string;
  pid: number | null;
  created_at: string;
  /** What `vm workspace prepare` / `vm run PATH` shipped last; null: no workspace. */
  workspace: WorkspaceView | null;
  /** Problems `vm show` found with the VM's runtime files (e.g. a corrupt handles.json). */
  problems?: string[];
  /** Published ports (`-p`, `vm publish`), applied while the VM runs. */
  published?: PublishedPort[];
  /** Where the seconds of the last boot went (null: never booted by a banger that records them). */
  boot: BootTimings | null;
  /** How the first start went: `restored from template <key>` or `cold: <why>` (warm start, SPEC §7.6). */
  warm_start?: string;
  /** `vm show`: bytes the VM's own files take on disk (not the image or the shared layers it stands on). */
  own_bytes?: number;
}

/** One published port: the host's address:host_port forwards to the guest's guest_port. */
export interface PublishedPort {
  protocol: 'tcp' | 'udp';
  address: string;
  host_port: number;
  guest_port: number;
  /** The full spec, `127.0.0.1:8080:80/tcp` (what `vm unpublish` takes). */
  spec: string;
}

/** One step of a boot: host side (the daemon's clock, from the create or start) or guest side (since the guest kernel started). */
export interface BootSpan {
  side: 'host' | 'guest';
  name: string;
  start_ms: number;
  ms: number;
}

/** The spans of one boot (`vm run --timings`, `vm start --timings`, `vm show`). */
export interface BootTimings {
  /** When the boot finished. */
  at: string;
  /** Host side, from the request to ready. */
  total_ms: number;
  spans: BootSpan[];
}

export interface WorkspaceView {
  guest_path: string;
  host_path: string;
  /** The commit the guest checkout was prepared at; null: files without history. */
  head: string | null;
  prepared_at: string;
}

/** One listening socket in the guest. */
export interface VmPort {
  protocol: 'tcp' | 'udp';
  address: string;
  port: number;
  uid: number;
  /** Where the host reaches it: a published ADDR:PORT (or the ssh forward) in user mode, `<name>.vm:<port>` in bridge mode, null when unpublished. */
  endpoint: string | null;
}

/** `vm.ports`: the guest's listening TCP and bound UDP sockets, from its agent. */
export interface VmPorts {
  name: string;
  ports: VmPort[];
  /** The VM's published ports, listened on in the guest or not. */
  published?: PublishedPort[];
  /** The agent had more than fit in one reply. */
  truncated: boolean;
}

export type ProcState = 'running' | 'exited';

/** How a process ended: exit_code or signal (exactly one once exited); timed_out when its timeout killed it. */
export interface ProcStatus {
  id: string;
  state: ProcState;
  exit_code: number | null;
  signal: number | null;
  timed_out: boolean;
  /** Why it ended without an exit status (the VM stopped, the agent went away). */
  error: string | null;
}

export interface ProcView extends ProcStatus {
  vm: string;
  argv: string[];
  started_at: string;
  ended_at: string | null;
  stdout_bytes: number;
  stderr_bytes: number;
}

/** One read of one stream: `data` (base64) covers [offset, next); `evicted`: the asked offset was gone, `lost` bytes skipped. */
export interface ProcChunk {
  offset: number;
  next: number;
  data: string;
  evicted: boolean;
  lost: number;
}

export interface ProcRead extends ProcStatus {
  stdout?: ProcChunk;
  stderr?: ProcChunk;
}

/** proc.exec: the whole run. Output beyond the buffer loses its start: `*_lost` bytes. */
export interface ProcExecResult extends ProcStatus {
  stdout: string;
  stderr: string;
  stdout_lost: number;
  stderr_lost: number;
}

export interface FsReadResult {
  path: string;
  data: string;
  mode: number;
  size: number;
}

export interface FsWriteResult {
  path: string;
  size: number;
  mode: number;
}

/** One entry of a guest directory, as lstat(2) sees it (a symlink is never followed). */
export interface FsEntry {
  name: string;
  /** The entry's full guest path. */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  /** Permission bits. */
  mode: number;
  /** Bytes of a regular file, or of a symlink's target path; 0 otherwise. */
  size: number;
  /** Last modification, ISO 8601. */
  mtime: string;
}

/** fs.list: the entries sorted by name; `truncated` when the directory had more than `max_entries` (or than one agent reply holds). */
export interface FsListResult {
  path: string;
  entries: FsEntry[];
  truncated: boolean;
}
