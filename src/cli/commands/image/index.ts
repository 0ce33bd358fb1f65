import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';
import { register as build } from './build.js';
import { register as del } from './delete.js';
import { register as list } from './list.js';
import { register as pull } from './pull.js';
import { register as show } from './show.js';
import { register as cacheCmd } from './cache.js';
import { register as exportCmd } from './export.js';
import { register as registerCmd } from './register.js';
import { register as refresh } from './refresh.js';
import { register as warm } from './warm.js';

export function register(program: Command, ctx: () => CliContext, act: Act): void {
  const image = program.command('image').description('manage images');
  for (const r of [list, show, del, build, pull, registerCmd, refresh, warm, exportCmd, cacheCmd]) r(image, ctx, act);
  for (const c of image.commands) c.exitOverride();
}
