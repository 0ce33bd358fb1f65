import type { ProgressEvent } from '../../api/protocol.js';
import type { Style } from './style.js';

const BAR = 24;

/** `[####......] 42%` */
export function bar(current: number, total: number): string {
  const f = total > 0 ? Math.max(0, Math.min(1, current / total)) : 0;
  const n = Math.round(f * BAR);
  return `[${'#'.repeat(n)}${'.'.repeat(BAR - n)}] ${Math.round(f * 100)}%`;
}

/**
 * Progress on stderr, so a guest command's stdout stays clean: on a TTY,
 * events with a total redraw one bar line in place; otherwise (or for stage
 * events) plain lines, each printed once.
 */
export function progressPrinter(
  out: NodeJS.WritableStream & { isTTY?: boolean },
  style: Style,
): (e: ProgressEvent) => void {
  let last = '';
  let barOpen = false;
  return (e) => {
    const tag = style.dim(`[${e.stage}]`);
    if (e.total && out.isTTY) {
      out.write(`\r\x1b[2K${tag} ${e.message} ${bar(e.current ?? 0, e.total)}`);
      barOpen = true;
      if ((e.current ?? 0) >= e.total) {
        out.write('\n');
        barOpen = false;
      }
      return;
    }
    const line = e.total ? `${e.message} (${Math.round(((e.current ?? 0) / e.total) * 100)}%)` : e.message;
    if (line === last) return;
    last = line;
    if (barOpen) out.write('\n');
    barOpen = false;
    out.write(`${tag} ${line}\n`);
  };
}
