import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';
import { register as importCmd } from './import.js';
import { register as list } from './list.js';
import { register as pull } from './pull.js';
import { register as rm } from './rm.js';
import { register as show } from './show.js';

export function register(program: Command, ctx: () => CliContext, act: Act): void {
  const kernel = program.command('kernel').description('manage kernels');
  for (const r of [list, show, rm, importCmd, pull]) r(kernel, ctx, act);
  for (const c of kernel.commands) c.exitOverride();
}
