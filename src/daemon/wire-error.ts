import type { ZodError } from 'zod';
import type { WireError } from '../api/protocol.js';
import { AppError, badRequest, noSpaceError } from '../errors.js';
import type { Logger } from '../services/context.js';

/* How errors and client-supplied text appear on the wire (daemon/server.ts). */

const MAX_ECHO = 80;

/** Client-supplied text echoed in messages and logs, cut to a readable length. */
export function shorten(text: string): string {
  return text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}… (${text.length} characters)` : text;
}

const MAX_ISSUES = 5;

export const opIdUsed = (opId: string): AppError =>
  badRequest(`op id "${opId}" is already used`, 'leave op_id out and the daemon picks a fresh one');

export function zodMessage(e: ZodError, root = 'params'): string {
  const more = e.issues.length > MAX_ISSUES ? `; and ${e.issues.length - MAX_ISSUES} more` : '';
  return (
    e.issues
      .slice(0, MAX_ISSUES)
      .map((i) => {
        const where = i.path.length ? i.path.join('.') : root;
        if (i.code === 'unrecognized_keys') {
          const keys = i.keys.slice(0, MAX_ISSUES).map((k) => `"${shorten(k)}"`);
          if (i.keys.length > MAX_ISSUES) keys.push(`and ${i.keys.length - MAX_ISSUES} more`);
          return `unknown field${i.keys.length > 1 ? 's' : ''} ${keys.join(', ')}`;
        }
        return where ? `${shorten(where)}: ${i.message}` : i.message;
      })
      .join('; ') + more
  );
}

/** Turns anything thrown into the wire error; unknown errors are bugs and say so. */
export function toWireError(e: unknown, opId: string, log: Logger): WireError {
  e = noSpaceError(e) ?? e;
  if (e instanceof AppError) {
    const w: WireError = { code: e.code, message: e.message, op_id: opId };
    if (e.hint !== undefined) w.hint = e.hint;
    if (e.detail !== undefined) w.detail = e.detail;
    return w;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  log.error('unexpected error (bug)', { op: opId, error: err.message, stack: err.stack });
  return {
    code: 'operation_failed',
    message: `internal error: ${err.message}`,
    hint: 'this is a bug in banger; the daemon log (`banger daemon logs`) has the stack trace',
    op_id: opId,
  };
}
