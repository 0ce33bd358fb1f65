import { z } from 'zod';

/* vm.file_put and vm.file_get's part of the CLI↔daemon contract (api/methods.ts): copies through the guest agent. */

/** Raw bytes per data frame (base64 on the wire: 64 KiB). */
export const FILE_FRAME_BYTES = 48 * 1024;

/** Largest file either way (the agent's u64 is far more; this bounds what a guest can make the host write). */
export const MAX_FILE_BYTES = 16 * 1024 * 1024 * 1024;

const guestPath = z
  .string()
  .regex(/^\/[^\0]*$/, 'an absolute guest path')
  .max(4096);

/** A host file into the guest: `path` is the destination (an existing directory: `path/name`). */
export const putParams = z.strictObject({
  ref: z.string().min(1),
  path: guestPath,
  /** The source's file name, for a directory destination. */
  name: z
    .string()
    .regex(/^[^/\0]+$/, 'a file name')
    .refine((s) => s !== '.' && s !== '..', 'a file name')
    .max(255),
  mode: z.number().int().min(0).max(0o7777),
  size: z.number().int().min(0).max(MAX_FILE_BYTES),
});

/** vm.file_put client frames: the file's bytes (base64), exactly `size` of them, then `{end: true}`. */
export const putFrame = z.strictObject({ data: z.base64().max(64 * 1024) });
export type PutInFrame = z.output<typeof putFrame>;

/** A guest file to the client, as data frames. */
export const getParams = z.strictObject({ ref: z.string().min(1), path: guestPath });

/** vm.file_get client frames: none. */
export const getFrame = z.never();

/** vm.file_get daemon frames: the file's bytes (base64), in order. */
export type GetOutFrame = { data: string };

/** Both results: the guest path written or read, its permission bits and size. */
export interface FileResult {
  path: string;
  mode: number;
  size: number;
}
