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

/** A VM snapshot (`vm snapshot list`, issue 18). */
export interface SnapshotView {
  name: string;
  /** The VM it was made of (by name at the time). */
  vm: string;
  image: string;
  vcpu: number;
  memory_mib: number;
  disk_bytes: number;
  created_at: string;
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

/** `vm.publish` / `vm.unpublish`: the VM's published ports afterwards. */
export interface VmPublished {
  name: string;
  published: PublishedPort[];
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

export interface ResolvedRef {
  ref: string;
  id?: string;
  name?: string;
  error?: { code: string; message: string; hint?: string };
}

/** Everything the CLI needs to run the system OpenSSH client against a VM. */
export interface SshInfo {
  name: string;
  host: string;
  port: number;
  user: string;
  key: string;
  known_hosts: string;
  host_key_alias: string;
}

/** `vm.ssh_info`: the ssh details, and how the CLI reaches the guest: OpenSSH when the image has sshd, else vm.exec through the agent. */
export interface VmSessionInfo extends SshInfo {
  has_sshd: boolean;
  agent: boolean;
}

/** One entry of `daemon.operations.list`: a request the daemon is serving. */
export interface OperationView {
  op_id: string;
  method: string;
  running_s: number;
}

export interface DaemonStatus {
  pid: number;
  version: string;
  uptime_s: number;
  socket: string;
  state_dir: string;
  operations: number;
}

/** `vm.logs`: a bounded tail of the console log, and where to follow it. */
export interface VmLogs {
  text: string;
  path: string;
  size: number;
}

/** `vm.stats`: VMM process usage from /proc, guest uptime over ssh (null when unknown). */
export interface VmStats {
  name: string;
  state: string;
  pid: number | null;
  cpu_seconds: number | null;
  rss_bytes: number | null;
  guest_uptime_s: number | null;
}

/** `vm.health`: the guest agent's answer (an unhealthy guest is an error, not a result). */
export interface VmHealth {
  name: string;
  healthy: true;
  /** The agent's name and version string. */
  agent: string;
  protocol_version: number;
  uptime_s: number;
  /** Sessions open in the agent, this health check included. */
  sessions: number;
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

export interface ImageView {
  id: string;
  name: string;
  source: string;
  kernel: string;
  distro: string;
  size_bytes: number;
  work_seed: boolean;
  created_at: string;
}

export interface KernelView {
  name: string;
  distro: string;
  version: string;
  format: string;
  source: string;
  sha256: string;
  initrd: boolean;
  modules: number;
  traits: { pvhNote?: boolean; virtioMmio?: string };
  created_at: string;
}

export interface KernelCatalogView {
  name: string;
  kind: 'distro' | 'tarball';
  distro: string;
  version: string;
  size: number | null;
  state: 'pulled' | 'available';
}

export interface KernelShowView extends KernelView {
  dir: string;
  kernel: string;
  initrd_path: string | null;
  modules_disk: string | null;
  initrd_kind: string;
  initramfs_modules: string[];
}

export interface ImageShowView extends ImageView {
  dir: string;
  rootfs: string;
  managed: boolean;
  assets_version: number;
  vms: string[];
  /** The OCI image config exec applies (empty values: none recorded, the guest's defaults). */
  config: ImageConfigView;
  /** Warm-start templates of the image (services/vm/templates.ts); serving: restores use it. */
  templates?: TemplateView[];
}

/** image.warm: the image's current template at the default VM spec; built: made by this call (or the build it joined). */
export interface ImageWarmResult {
  name: string;
  template: TemplateView;
  built: boolean;
}

/** One warm-start template of an image. */
export interface TemplateView {
  key: string;
  serving: boolean;
  vcpu: number;
  memory_mib: number;
  disk_bytes: number;
  created_at: string;
}

/** From the OCI image config at pull time: `Env`, `WorkingDir`, `User`; `Entrypoint` and `Cmd` for reference. */
export interface ImageConfigView {
  env: string[];
  working_dir: string;
  user: string;
  entrypoint: string[];
  cmd: string[];
}

/** image.refresh: the image and the guest-assets version it had before and has now. */
export interface ImageRefreshResult {
  name: string;
  id: string;
  assets_version: number;
  previous_assets_version: number;
}

export interface CachePruneResult {
  blobs: number;
  bytes: number;
  dry_run: boolean;
}

export interface ExportResult {
  name: string;
  path: string;
  sha256: string;
  bytes: number;
}
