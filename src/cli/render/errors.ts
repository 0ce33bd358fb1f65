import { AppError } from '../../errors.js';
import { RemoteError } from '../client.js';
import type { Style } from './style.js';

/** `banger: <message>` + `hint:` + the op id, dimmed (SPEC §4). Unknown errors print a stack and say it is a bug. */
export function renderError(e: unknown, style: Style): string {
  if (e instanceof AppError) {
    const lines = [`banger: ${e.message}`];
    if (e.hint) lines.push(`hint: ${e.hint}`);
    if (e instanceof RemoteError) lines.push(style.dim(`(op ${e.opId})`));
    return `${lines.join('\n')}\n`;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return `banger: internal error: ${err.message}\n${style.dim(err.stack ?? '')}\nhint: this is a bug in banger; please report it with the lines above\n`;
}
