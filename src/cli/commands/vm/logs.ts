import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';

/** Prints new bytes of a file as it grows, until the process is interrupted. */
async function follow(path: string, from: number, out: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
  let pos = from;
  while (!signal.aborted) {
    const fh = await open(path, 'r').catch(() => undefined);
    if (fh) {
      const { size } = await fh.stat();
      if (size < pos) pos = 0;
      if (size > pos) {
        const buf = Buffer.alloc(Math.min(size - pos, 1 << 20));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        pos += bytesRead;
        out.write(buf.subarray(0, bytesRead));
      }
      await fh.close();
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function register(vm: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  vm.command('logs')
    .description("print a VM's serial console log")
    .argument('<vm>', 'VM name or id')
    .option('-f, --follow', 'keep printing as the console grows (Ctrl-C to stop)')
    .addHelpText('after', '\nExamples:\n  banger vm logs calm-otter | tail -50\n  banger vm logs -f calm-otter')
    .action(async (ref: string, o: { follow?: boolean }) => {
      const c = ctx();
      const r = await c.client.call<'vm.logs', { text: string; path: string; size: number }>('vm.logs', { ref });
      c.out.write(r.text);
      if (o.follow) {
        const ac = new AbortController();
        process.once('SIGINT', () => ac.abort());
        await follow(r.path, r.size, c.out, ac.signal);
      }
      setCode(0);
    });
}
