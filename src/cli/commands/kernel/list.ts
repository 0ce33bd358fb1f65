import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';
import { formatBytes, table } from '../../render/table.js';

export function register(kernel: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  kernel
    .command('list')
    .alias('ls')
    .description('list local kernels, or with --available the catalog')
    .option('--available', 'list what the catalog offers, pulled or not')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  banger kernel list\n  banger kernel list --available --json')
    .action(async (opts: { json?: boolean; available?: boolean }) => {
      const c = ctx();
      if (opts.available) {
        const entries = await c.client.call('kernel.catalog', {});
        c.out.write(
          opts.json
            ? `${JSON.stringify(entries, null, 2)}\n`
            : table(
                ['NAME', 'KIND', 'DISTRO', 'VERSION', 'SIZE', 'STATE'],
                entries.map((e) => [
                  e.name,
                  e.kind,
                  e.distro,
                  e.version,
                  e.size === null ? '-' : formatBytes(e.size),
                  e.state,
                ]),
              ),
        );
      } else {
        const kernels = await c.client.call('kernel.list', {});
        if (opts.json) c.out.write(`${JSON.stringify(kernels, null, 2)}\n`);
        else if (kernels.length === 0)
          c.out.write('no kernels yet (the default kernel is pulled by the first `banger vm run`)\n');
        else
          c.out.write(
            table(
              ['NAME', 'VERSION', 'FORMAT', 'MODULES', 'SOURCE'],
              kernels.map((k) => [k.name, k.version, k.format, String(k.modules), k.source]),
            ),
          );
      }
      setCode(0);
    });
}
