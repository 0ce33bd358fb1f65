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
  signal?: AbortSignal;
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
