import type { Command } from 'commander';
import type { Config } from '../../config/config.js';
import type { CheckRow } from '../../services/doctor/checks.js';
import { HostProbe } from '../../system/host.js';
import type { Act, CliContext } from '../context.js';
import { table } from '../render/table.js';
import type { Style } from '../render/style.js';

export function renderChecks(rows: readonly CheckRow[], style: Style): string {
  const colour = (s: CheckRow['status']): string =>
    s === 'PASS' ? style.green(s) : s === 'WARN' ? style.yellow(s) : style.red(s);
  const body = table(
    ['CHECK', 'STATUS', 'DETAIL'],
    rows.map((r) => [r.name, r.status, r.detail]),
  );
  const coloured = body.replace(/ (PASS|WARN|FAIL) /g, (_m, s: CheckRow['status']) => ` ${colour(s)} `);
  const fixes = rows.filter((r) => r.fix && r.status !== 'PASS').map((r) => `  ${r.name}: ${r.fix}`);
  return fixes.length ? `${coloured}\nfixes:\n${fixes.join('\n')}\n` : coloured;
}

export function register(program: Command, ctx: () => CliContext, act: Act): void {
  program
    .command('doctor')
    .description('check this host for everything banger needs')
    .option('--json', 'print JSON')
    .action(
      act(async () => {
        const c = ctx();
        // Loaded on demand: the config parser (zod) and the store (native sqlite) would slow every other command's start.
        const [{ loadConfigFile }, { runChecks }, { probeDns }] = await Promise.all([
          import('../../config/read-file.js'),
          import('../../services/doctor/checks.js'),
          import('../../services/network/dns.js'),
        ]);
        const host = new HostProbe();
        let config: Config | undefined;
        let configError: string | undefined;
        try {
          config = await loadConfigFile(c.paths.configFile, host);
        } catch (e) {
          configError = (e as Error).message;
        }
        const rows = await runChecks({
          paths: c.paths,
          host,
          runner: c.runner,
          version: c.version,
          config,
          configError,
          arch: process.arch,
          network: { euid: process.geteuid?.() ?? -1, probeDns: (listen) => probeDns(listen) },
        });
        const ok = !rows.some((r) => r.status === 'FAIL');
        return { code: ok ? 0 : 1, json: { ok, checks: rows }, text: renderChecks(rows, c.style) };
      }),
    );
}
