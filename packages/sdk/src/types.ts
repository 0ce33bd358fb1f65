/* The SDK's own types (self-contained: no import from banger's sources). */

export interface VmInfo {
  id: string;
  name: string;
  state: string;
  image: string;
  vcpu: number;
  memory_mib: number;
  disk_bytes: number;
  ip: string | null;
  ssh: string | null;
  created_at: string;
  [field: string]: unknown;
}

export interface CreateOptions {
  name?: string;
  image?: string;
  vcpu?: number;
  /** MiB, or a size with a binary unit ("2G"). */
  memory?: number | string;
  diskSize?: number | string;
  nat?: boolean;
  publish?: string[];
  /** Stop (with rm: delete) the VM this long (ms) after its create. */
  ttl?: number;
  /** Stop (with rm: delete) the VM once unused this long (ms). */
  idleTtl?: number;
  rm?: boolean;
  /** A retried create with the same key (within 24 h) returns the same VM. */
  idempotencyKey?: string;
  /**
   * A directory in a git work tree on this host: shipped to /root/repo once the VM runs, as
   * `banger vm run PATH` does (tracked files and recent history). If it cannot ship, the VM is deleted.
   */
  workspace?: string;
  /** How the workspace ships (`workspace` only). */
  workspaceOptions?: WorkspaceOptions;
  signal?: AbortSignal;
}

export interface WorkspaceOptions {
  /** Replace what the VM has at /root/repo, uncommitted changes included. */
  force?: boolean;
  /** Also ship untracked files that git does not ignore. */
  includeUntracked?: boolean;
  /** Commits of history to ship. */
  depth?: number;
  /** The commit to check out in the guest (default HEAD: the work tree as it is). */
  from?: string;
  /** The guest's branch name. */
  branch?: string;
  signal?: AbortSignal;
}

export interface WorkspaceInfo {
  guest_path: string;
  host_path: string;
  /** The commit the guest's checkout is at; null without git (in the guest, or no commits). */
  head: string | null;
  files: number;
  git: boolean;
  /** Notices the CLI would print (untracked files left out, no git in the guest). */
  notes: string[];
}

export interface WorkspaceExportOptions {
  /** Export the commits made since this one (git format-patch output, for git am) instead of a diff. */
  baseCommit?: string;
  /** The git work tree in the guest (default /root/repo). */
  guestPath?: string;
  /** Write the patch to this host file (atomically) instead of returning it. */
  output?: string;
  signal?: AbortSignal;
}

export interface WorkspaceExport {
  /** `git apply`-able (or `git am`-able with baseCommit); empty when nothing changed (or with output). */
  patch: Buffer;
  notes: string[];
}

export interface ExecOptions {
  cwd?: string;
  env?: Record<string, string>;
  user?: string;
  /** Input, then end of input (at most 512 KiB here; use spawn and write for more). */
  stdin?: string | Uint8Array;
  /** Kill the command's process group after this many ms (the result says timedOut). */
  timeout?: number;
  /** Throw ExecError (or BangerTimeoutError) unless the command exits 0. */
  check?: boolean;
  signal?: AbortSignal;
}

export interface SpawnOptions extends Omit<ExecOptions, 'check' | 'stdin'> {
  /** Input, then end of input; without it stdin stays open for write(). */
  stdin?: string | Uint8Array;
}

export interface ExecResult {
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export interface ProcessInfo {
  id: string;
  vm: string;
  argv: string[];
  state: 'running' | 'exited';
  exit_code: number | null;
  signal: number | null;
  timed_out: boolean;
  error: string | null;
  stdout_bytes: number;
  stderr_bytes: number;
}

export interface AttachOptions {
  /** Byte offset to read both streams from (0: from the start; an evicted offset starts at the oldest kept byte). */
  fromOffset?: number;
  signal?: AbortSignal;
}

export interface ListeningPort {
  protocol: 'tcp' | 'udp';
  address: string;
  port: number;
  uid: number;
  /** Where the host reaches it (a published ADDR:PORT, `<name>.vm:<port>`), null when unpublished. */
  endpoint: string | null;
}

export interface FileReadResult {
  data: Buffer;
  mode: number;
}

/** One entry of a guest directory, as lstat(2) sees it (a symlink is never followed). */
export interface FileEntry {
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

export interface FileListResult {
  path: string;
  /** Sorted by name. */
  entries: FileEntry[];
  /** The directory had more entries than maxEntries (or than one agent reply holds). */
  truncated: boolean;
}
