import { z } from 'zod';

/* vm.exec's part of the CLI↔daemon contract (api/methods.ts): its params, frames and result. */

/** A command in a running VM through its guest agent; without argv, the user's login shell on a terminal. */
export const execParams = z.strictObject({
  ref: z.string().min(1),
  /** Absent: the user's login shell (from the guest's /etc/passwd, else /bin/sh) on a terminal. */
  argv: z.array(z.string()).min(1).max(4096).optional(),
  /** `-e NAME=value`, over the image's Env. */
  env: z.record(z.string().regex(/^[^=\0]+$/, 'a name without "=" or NUL'), z.string()).optional(),
  tty: z.boolean().optional(),
  rows: z.number().int().min(0).max(65535).optional(),
  cols: z.number().int().min(0).max(65535).optional(),
  /** Over the image's WorkingDir. */
  cwd: z.string().optional(),
  /** Over the image's User: "name", "uid", "name:group", "uid:gid". */
  user: z.string().min(1).optional(),
});

/**
 * vm.exec client frames: stdin bytes (base64), the end of stdin, a window size
 * change, a signal for the command's process group.
 */
export const execFrame = z.union([
  z.strictObject({ stdin: z.base64().max(64 * 1024) }),
  z.strictObject({ eof: z.literal(true) }),
  z.strictObject({
    resize: z.strictObject({ rows: z.number().int().min(1).max(65535), cols: z.number().int().min(1).max(65535) }),
  }),
  z.strictObject({ signal: z.string().regex(/^SIG[A-Z0-9]+$/) }),
]);
export type ExecInFrame = z.output<typeof execFrame>;

/** vm.exec daemon frames: the command's output (base64); with a terminal everything is stdout. */
export type ExecOutFrame = { stdout: string } | { stderr: string };

/** vm.exec's result: the exit status, or the signal that killed the command (exactly one is set). */
export interface ExecResult {
  exit_code: number | null;
  signal: number | null;
}
