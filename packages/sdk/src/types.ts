/*
 * The SDK's own types (self-contained: no import from banger's sources). What the daemon returns
 * is generated from banger's contract into ./generated/contract.ts (never edited by hand).
 */
import type { FsEntry, FsListResult, ProcView, VmPort, VmView } from './generated/contract.js';

/** A VM as the daemon describes it (vm.show). */
export type VmInfo = VmView;
/** A daemon-side process (proc.show). */
export type ProcessInfo = ProcView;
/** A listening socket in the guest, with where the host reaches it. */
export type ListeningPort = VmPort;
/** One entry of a guest directory, as lstat(2) sees it (a symlink is never followed). */
export type FileEntry = FsEntry;
/** vm.files.list: entries sorted by name; `truncated` when there were more than maxEntries. */
export type FileListResult = FsListResult;

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

/** vm.pty: a command on a terminal. */
export interface PtyOptions extends Omit<ExecOptions, 'check' | 'stdin'> {
  /** The terminal's size (default 80×24); later changes: PtySession.resize. */
  cols?: number;
  rows?: number;
}

export interface ExecResult {
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export interface AttachOptions {
  /** Byte offset to read both streams from (0: from the start; an evicted offset starts at the oldest kept byte). */
  fromOffset?: number;
  signal?: AbortSignal;
}

export interface FileReadResult {
  data: Buffer;
  mode: number;
}
