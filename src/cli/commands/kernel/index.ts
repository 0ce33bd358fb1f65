import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';
import { register as importCmd } from './import.js';
import { register as list } from './list.js';
import { register as pull } from './pull.js';
import { register as rm } from './rm.js';
import { register as show } from './show.js';

export function register(program: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  const kernel = program.command('kernel').description('manage kernels');
  for (const r of [list, show, rm, importCmd, pull]) r(kernel, ctx, setCode);
  for (const c of kernel.commands) c.exitOverride();
}
