import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';
import { formatBytes, keyValues } from '../../render/table.js';

export function register(image: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  image
    .command('show')
    .description('show one image')
    .argument('<image>', 'image name or id')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { json?: boolean }) => {
      const c = ctx();
      const i = await c.client.call('image.show', { name });
      if (o.json) c.out.write(`${JSON.stringify(i, null, 2)}\n`);
      else {
        const rows: [string, string][] = [
          ['name', i.name],
          ['id', i.id],
          ['source', i.source],
          ['distro', i.distro],
          ['kernel', i.kernel],
          ['rootfs', `${i.rootfs} (${formatBytes(i.size_bytes)})`],
          ['work-seed', i.work_seed ? 'yes' : 'no'],
          ['managed', i.managed ? 'yes' : 'no (registered)'],
          ['guest assets', `v${i.assets_version}`],
          ['used by', i.vms.length ? i.vms.join(', ') : '-'],
          ['created', i.created_at],
        ];
        c.out.write(keyValues(rows));
      }
      setCode(0);
    });
}
