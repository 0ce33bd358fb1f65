import type { Logger } from '../services/context.js';

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LEVELS;

/** One JSON-ish line per event on the given stream (the daemon log). No secrets go in fields. */
export function streamLogger(out: NodeJS.WritableStream, level: LogLevel): Logger {
  const emit = (l: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[l] < LEVELS[level]) return;
    const extra = fields ? ` ${JSON.stringify(fields)}` : '';
    out.write(`${new Date().toISOString()} ${l.toUpperCase()} ${msg}${extra}\n`);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}
