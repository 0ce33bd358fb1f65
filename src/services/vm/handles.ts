import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { VmHandles } from '../../store/vms.js';

/*
 * handles.json in a VM dir: the VMM's pid, start time and sockets (SPEC §2),
 * mirrored in the store. Only a missing file is normal; anything else that
 * keeps it from being read is a problem to report, never silence: treating a
 * corrupt file as "no VMM" would mark a live VM stopped and orphan its VMM.
 */

// Loose: keys a newer banger adds are kept, not refused. A VMM started by an older banger has its
// control socket under `qmpSocket` (the file is written once per boot): read as controlSocket.
const handlesSchema = z
  .looseObject({
    pid: z.number().int().positive(),
    startTime: z.number().int().nonnegative(),
    controlSocket: z.string().min(1).optional(),
    qmpSocket: z.string().min(1).optional(),
    sshPort: z.number().int().min(1).max(65535),
  })
  .transform(({ qmpSocket, controlSocket, ...rest }, ctx) => {
    const sock = controlSocket ?? qmpSocket;
    if (sock === undefined) {
      ctx.addIssue({ code: 'custom', path: ['controlSocket'], message: 'missing' });
      return z.NEVER;
    }
    return { ...rest, controlSocket: sock };
  });

export type HandlesFile =
  { state: 'missing' } | { state: 'ok'; handles: VmHandles } | { state: 'corrupt'; problem: string };

/** Parses handles.json text; `path` names the file in the problem. */
export function parseHandlesFile(text: string, path: string): HandlesFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { state: 'corrupt', problem: `${path} is not valid JSON (${(e as Error).message})` };
  }
  const r = handlesSchema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : '';
    return { state: 'corrupt', problem: `${path} does not hold VM handles (${where}${issue?.message ?? 'invalid'})` };
  }
  return { state: 'ok', handles: r.data };
}

/** Reads handles.json: missing (ENOENT only), ok, or corrupt with the reason (unreadable, not JSON, wrong shape). */
export async function readHandlesFile(path: string): Promise<HandlesFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { state: 'missing' };
    return { state: 'corrupt', problem: `cannot read ${path}: ${code ?? (e as Error).message}` };
  }
  return parseHandlesFile(text, path);
}

/** What a corrupt handles.json means for a VM, given whether the store holds a copy of its handles. */
export function handlesProblem(problem: string, storeCopy: boolean, vmId: string): string {
  return storeCopy
    ? `${problem}; using the copy in the store`
    : `${problem}, and there is no copy in the store: its VMM may still be running (look for it with \`pgrep -af ${vmId}\`)`;
}
