import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';

export function register(vm: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  vm.command('logs')
    .description("print a VM's serial console log")
    .argument('<vm>', 'VM name or id')
    .addHelpText('after', '\nExample:\n  banger vm logs calm-otter | tail -50')
    .action(async (ref: string) => {
      const c = ctx();
      const text = await c.client.call<'vm.logs', string>('vm.logs', { ref });
      c.out.write(text);
      setCode(0);
    });
}
