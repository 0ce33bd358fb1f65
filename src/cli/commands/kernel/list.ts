import type { Command } from 'commander';
import type { KernelCatalogView, KernelView } from '../../../api/methods.js';
import type { Act, CliContext } from '../../context.js';
import { formatBytes, table } from '../../render/table.js';

export function renderCatalog(entries: readonly KernelCatalogView[]): string {
  return table(
    ['NAME', 'KIND', 'DISTRO', 'VERSION', 'SIZE', 'STATE'],
    entries.map((e) => [e.name, e.kind, e.distro, e.version, e.size === null ? '-' : formatBytes(e.size), e.state]),
  );
}

export function renderKernels(kernels: readonly KernelView[]): string {
  if (kernels.length === 0) return 'no kernels yet (the default kernel is pulled by the first `banger vm run`)\n';
  return table(
    ['NAME', 'VERSION', 'FORMAT', 'MODULES', 'SOURCE'],
    kernels.map((k) => [k.name, k.version, k.format, String(k.modules), k.source]),
  );
}

export function register(kernel: Command, ctx: () => CliContext, act: Act): void {
  kernel
    .command('list')
    .alias('ls')
    .description('list local kernels, or with --available the catalog')
    .option('--available', 'list what the catalog offers, pulled or not')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  banger kernel list\n  banger kernel list --available --json')
    .action(
      act(async (opts: { available?: boolean }) => {
        const c = ctx();
        if (opts.available) {
          const entries = await c.client.call('kernel.catalog', {});
          return { json: entries, text: renderCatalog(entries) };
        }
        const kernels = await c.client.call('kernel.list', {});
        return { json: kernels, text: renderKernels(kernels) };
      }),
    );
}
