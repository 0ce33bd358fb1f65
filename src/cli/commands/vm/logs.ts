import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';

const CHUNK = 1 << 20;
/** Most read per poll; a guest printing faster than this is shown with gaps (the log is cut back at 10 MiB). */
const MAX_PER_POLL = 64 * CHUNK;

/**
 * Prints new bytes of a file as it grows, until the process is interrupted.
 * The daemon cuts a running VM's log back to empty past 10 MiB: a file
 * shorter than what was already printed has been cut, and all of it is new.
 */
async function follow(path: string, from: number, out: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
  let pos = from;
  while (!signal.aborted) {
    const fh = await open(path, 'r').catch(() => undefined);
    if (fh) {
      try {
        const { size } = await fh.stat();
        if (size < pos) pos = 0;
        // Catch up to the end in bounded reads, so a fast guest does not leave the follower behind a cut.
        for (let read = 0; read < MAX_PER_POLL;) {
          const buf = Buffer.alloc(CHUNK);
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
          read += bytesRead;
          out.write(buf.subarray(0, bytesRead));
        }
      } finally {
        await fh.close();
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  vm.command('logs')
    .description("print a VM's serial console log")
    .argument('<vm>', 'VM name or id')
    .option('-f, --follow', 'keep printing as the console grows (Ctrl-C to stop)')
    .addHelpText('after', '\nExamples:\n  banger vm logs calm-otter | tail -50\n  banger vm logs -f calm-otter')
    .action(
      act(async (ref: string, o: { follow?: boolean }) => {
        const c = ctx();
        const r = await c.client.call('vm.logs', { ref });
        if (!o.follow) return { text: r.text };
        // Following streams: what is there is printed before the rest arrives.
        c.out.write(r.text);
        const ac = new AbortController();
        process.once('SIGINT', () => ac.abort());
        await follow(r.path, r.size, c.out, ac.signal);
        return {};
      }),
    );
}
