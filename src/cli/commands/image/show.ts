import type { Command } from 'commander';
import type { ImageShowView } from '../../../api/methods.js';
import type { Act, CliContext } from '../../context.js';
import { formatBytes, keyValues } from '../../render/table.js';

/** The recorded OCI config, only the parts it sets. */
function configRows(i: ImageShowView): [string, string][] {
  const c = i.config as ImageShowView['config'] | undefined;
  if (c === undefined) return []; // an older daemon
  const rows: [string, string][] = [];
  if (c.env.length) rows.push(['env', c.env.join(' ')]);
  if (c.working_dir) rows.push(['workdir', c.working_dir]);
  if (c.user) rows.push(['user', c.user]);
  if (c.entrypoint.length) rows.push(['entrypoint', JSON.stringify(c.entrypoint)]);
  if (c.cmd.length) rows.push(['cmd', JSON.stringify(c.cmd)]);
  return rows;
}

export function renderImage(i: ImageShowView): string {
  return keyValues([
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
    ...configRows(i),
    ...(i.templates ?? []).map((t): [string, string] => [
      'template',
      `${t.key.slice(0, 12)} ${t.vcpu} vcpu, ${t.memory_mib} MiB, ${formatBytes(t.disk_bytes)} disk${t.serving ? '' : ' (superseded)'}`,
    ]),
    ['created', i.created_at],
  ]);
}

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  image
    .command('show')
    .description('show one image')
    .argument('<image>', 'image name or id')
    .option('--json', 'print JSON')
    .action(
      act(async (name: string) => {
        const i = await ctx().client.call('image.show', { name });
        return { json: i, text: renderImage(i) };
      }),
    );
}
