import type { ProgressEvent } from '../../api/protocol.js';
import type { Style } from './style.js';

/** Stage lines on stderr, so a guest command's stdout stays clean. */
export function progressPrinter(out: NodeJS.WritableStream, style: Style): (e: ProgressEvent) => void {
  let last = '';
  return (e) => {
    const line = e.total ? `${e.message} (${Math.round(((e.current ?? 0) / e.total) * 100)}%)` : e.message;
    if (line === last) return;
    last = line;
    out.write(`${style.dim(`[${e.stage}]`)} ${line}\n`);
  };
}
