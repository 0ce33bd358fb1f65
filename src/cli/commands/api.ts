import type { Command } from 'commander';
import { openApiDocument } from '../../api/openapi.js';
import type { Act, CliContext } from '../context.js';

/** `banger api`: the daemon's HTTP API (docs/http-api.md). */
export function register(program: Command, ctx: () => CliContext, act: Act): void {
  const api = program.command('api').description("the daemon's HTTP API (docs/http-api.md)");
  api
    .command('token')
    .description("print the TCP listener's bearer token (api_listen), made on first use")
    .option('--rotate', 'replace it with a new one (the old one stops working at once)')
    .option('--json', 'print JSON')
    .action(
      act(async (opts: { rotate?: boolean }) => {
        const r = await ctx().client.call('daemon.api_token', opts.rotate === true ? { rotate: true } : {});
        return { json: r, text: `${r.token}\n` };
      }),
    );
  api
    .command('openapi')
    .description('print the OpenAPI 3.1 document of the API')
    .action(act(() => ({ text: `${JSON.stringify(openApiDocument(ctx().version), null, 2)}\n` })));
}
