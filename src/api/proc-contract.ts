import { z } from 'zod';

/*
 * proc.*: guest processes the daemon runs and keeps (services/vm/processes.ts),
 * their params and results. Output is read by offset: `proc.read` (unary, long-polled with
 * `wait_ms`, bytes as base64: works on any transport) or `proc.stream` (binary frames, live).
 * A terminal process (`proc.pty`) carries raw bytes over an upgraded connection.
 */

const envSchema = z.record(z.string().regex(/^[^=\0]+$/, 'a name without "=" or NUL'), z.string());
const procId = z.string().regex(/^p-[0-9a-f]{12}$/, 'a process id as proc.start returned it (p-…)');
/** A week: longer commands have no timeout. */
const MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000;
/** The longest a read or wait blocks before it answers anyway (the client asks again). */
export const MAX_WAIT_MS = 60_000;
/**
 * Stdin given with proc.start / proc.exec, each proc.write, and each fs.write: within one request
 * line of the wire (api/protocol.ts WIRE_LIMITS, 1 MiB) once base64 grew it by a third.
 */
export const MAX_STDIN_BYTES = 512 * 1024;
/** The most one proc.read returns per stream. */
export const MAX_READ_BYTES = 1024 * 1024;

const startFields = {
  ref: z.string().min(1),
  argv: z.array(z.string()).min(1).max(4096),
  cwd: z.string().optional(),
  env: envSchema.optional(),
  user: z.string().min(1).optional(),
  /** Base64 bytes for the command's stdin, then end of input. */
  stdin: z
    .base64()
    .max(Math.ceil(MAX_STDIN_BYTES / 3) * 4)
    .optional(),
  /** Kills the command's process group after this long; the result says timed_out. */
  timeout_ms: z.number().int().positive().max(MAX_TIMEOUT_MS).optional(),
};

/** vm.create's lifetime fields (services/vm/reaper.ts); a key makes a retried create return the same VM for 24 h. */
export const lifetimeFields = {
  idempotency_key: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,128}$/, '1 to 128 of A-Z a-z 0-9 . _ : -')
    .optional(),
  /** Stop (rm: delete) the VM this long after its create. */
  ttl_ms: z.number().int().positive().max(MAX_TIMEOUT_MS).optional(),
  /** Stop (rm: delete) the VM once unused this long. */
  idle_ttl_ms: z.number().int().positive().max(MAX_TIMEOUT_MS).optional(),
  rm: z.boolean().optional(),
};

export const startParams = z.strictObject({
  ...startFields,
  /** Keep stdin open for proc.write (without it and without `stdin`, input ends at once). */
  open_stdin: z.boolean().optional(),
});

export const execParams = z.strictObject(startFields);

export const readParams = z.strictObject({
  id: procId,
  /** Offsets to read from (bytes since the process started); absent: from the oldest kept byte. */
  stdout_offset: z.number().int().min(0).optional(),
  stderr_offset: z.number().int().min(0).optional(),
  /** Which streams to return (both by default). */
  streams: z
    .array(z.enum(['stdout', 'stderr']))
    .min(1)
    .optional(),
  /** Block until there is new output or the process ended, at most this long. */
  wait_ms: z.number().int().min(0).max(MAX_WAIT_MS).optional(),
  max_bytes: z.number().int().positive().max(MAX_READ_BYTES).optional(),
});

export const writeParams = z.union([
  z.strictObject({ id: procId, data: z.base64().max(Math.ceil(MAX_STDIN_BYTES / 3) * 4) }),
  z.strictObject({ id: procId, eof: z.literal(true) }),
]);

export const signalParams = z.strictObject({ id: procId, signal: z.string().regex(/^SIG[A-Z0-9]+$/) });

export const waitParams = z.strictObject({
  id: procId,
  /** Answer after this long even if it still runs (state says so); absent: until it ends. */
  wait_ms: z.number().int().min(0).max(MAX_WAIT_MS).optional(),
});

export const idParams = z.strictObject({ id: procId });

/** proc.stream: output as binary frames (api/binframes.ts) from these offsets, then live, until the exit frame. */
export const streamParams = z.strictObject({
  id: procId,
  /** Where to start in each stream (bytes since the process started); absent: 0. Evicted: an evicted frame, then the oldest kept byte. */
  stdout_offset: z.number().int().min(0).optional(),
  stderr_offset: z.number().int().min(0).optional(),
  streams: z
    .array(z.enum(['stdout', 'stderr']))
    .min(1)
    .optional(),
});

const winSize = { rows: z.number().int().min(1).max(65535), cols: z.number().int().min(1).max(65535) };

/** proc.resize: the window size of a process started on a terminal (proc.pty). */
export const resizeParams = z.strictObject({ id: procId, ...winSize });

/**
 * proc.pty (Upgrade: banger-pty): a new command on a terminal (`ref`, `argv`…), or an existing terminal
 * process (`id`) from `offset` of its output (absent: 0).
 */
export const ptyParams = z.union([
  z.strictObject({
    ref: z.string().min(1),
    argv: z.array(z.string()).min(1).max(4096),
    cwd: z.string().optional(),
    env: envSchema.optional(),
    user: z.string().min(1).optional(),
    timeout_ms: startFields.timeout_ms,
    rows: winSize.rows.optional(),
    cols: winSize.cols.optional(),
  }),
  z.strictObject({ id: procId, offset: z.number().int().min(0).optional() }),
]);
export const listParams = z.strictObject({ ref: z.string().min(1).optional() });

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

/** fs.read answers files up to this size (larger ones: vm.file_get). */
export const MAX_FS_READ_BYTES = 16 * 1024 * 1024;

const guestPath = z.string().startsWith('/', 'an absolute guest path').max(4096);

export const fsReadParams = z.strictObject({
  ref: z.string().min(1),
  path: guestPath,
  max_bytes: z.number().int().positive().max(MAX_FS_READ_BYTES).optional(),
});

export const fsWriteParams = z.strictObject({
  ref: z.string().min(1),
  path: guestPath,
  data: z.base64().max(Math.ceil(MAX_STDIN_BYTES / 3) * 4),
  mode: z.number().int().min(0).max(0o7777).optional(),
});

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

/** fs.list answers at most this many entries by default, and never more than MAX_FS_LIST_ENTRIES. */
export const DEFAULT_FS_LIST_ENTRIES = 1000;
export const MAX_FS_LIST_ENTRIES = 10000;

export const fsListParams = z.strictObject({
  ref: z.string().min(1),
  path: guestPath,
  max_entries: z.number().int().positive().max(MAX_FS_LIST_ENTRIES).optional(),
});

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
