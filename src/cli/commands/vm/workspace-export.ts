import type { Command } from 'commander';
import { checkBaseCommit, exportArgv, exportFailure } from '../../../workspace/export.js';
import type { Act, CliContext, CommandResult } from '../../context.js';
import { openAtomic } from '../../session/atomic-out.js';
import { captureFromGuest } from '../../session/guest-capture.js';
import { GUEST_REPO } from '../../session/workspace-ship.js';

/* `vm workspace export`: the guest's changes back to the host as a patch. */

/** The most patch banger takes from a guest (its content is the guest's). */
export const PATCH_LIMIT = 256 * 1024 * 1024;

export interface ExportFlags {
  baseCommit?: string;
  output?: string;
  guestPath?: string;
}

function writeOut(w: NodeJS.WritableStream, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (w.write(data)) return resolve();
    w.once('drain', resolve);
  });
}

export async function exportWorkspace(c: CliContext, ref: string, o: ExportFlags): Promise<CommandResult> {
  const base = o.baseCommit === undefined ? undefined : checkBaseCommit(o.baseCommit);
  const dir = o.guestPath ?? GUEST_REPO;
  const info = await c.client.call('vm.ssh_info', { ref });
  const file = o.output === undefined ? undefined : await openAtomic(o.output);
  try {
    const r = await captureFromGuest(c.runner, c.client, {
      vm: ref,
      info,
      argv: exportArgv(dir, base),
      sink: file ? (b) => file.write(b) : (b) => writeOut(c.out, b),
      limit: PATCH_LIMIT,
      what: 'the patch',
    });
    const failed = exportFailure(ref, dir, base, r.code, r.stderr);
    if (failed) throw failed;
    await file?.commit();
    const what = base ? `commits since ${base}` : 'changes';
    const note =
      r.bytes === 0
        ? `no ${what} in ${ref}:${dir}${file ? `; ${o.output} is empty` : ''}\n`
        : file
          ? `${ref}:${dir}: ${what} written to ${o.output} (apply with ${base ? 'git am' : 'git apply'})\n`
          : '';
    return note ? { err: c.style.dim(note) } : {};
  } finally {
    await file?.abort();
  }
}

export function registerExport(ws: Command, ctx: () => CliContext, act: Act): void {
  ws.command('export')
    .description("the VM workspace's changes as a patch (git apply), or its new commits (git am) with --base-commit")
    .argument('<vm>', 'VM name or id')
    .option('--base-commit <sha>', 'export the commits made since this one, as git format-patch output')
    .option('-o, --output <file>', 'write the patch to this file (default: stdout)')
    .option('--guest-path <path>', `the git work tree in the guest (default ${GUEST_REPO})`)
    .addHelpText(
      'after',
      '\nExamples:\n  banger vm workspace export dev | git apply\n  banger vm workspace export dev --base-commit "$(git rev-parse HEAD)" -o work.patch && git am work.patch',
    )
    .action(act((ref: string, o: ExportFlags) => exportWorkspace(ctx(), ref, o)));
}
