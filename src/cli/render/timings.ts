import type { BootTimings } from '../../api/methods.js';
import { formatDuration, table } from './table.js';

/**
 * A boot's spans as a small table (`vm run --timings`, `vm start --timings`, `vm show`): host spans
 * on the daemon's clock from the request, guest spans on the guest's clock from its kernel start,
 * each with its share of the host total.
 */
export function renderTimings(t: BootTimings): string {
  const rows = t.spans.map((s) => [
    s.side,
    s.name,
    `+${formatDuration(s.start_ms)}`,
    formatDuration(s.ms),
    t.total_ms > 0 ? `${Math.round((s.ms / t.total_ms) * 100)}%` : '-',
  ]);
  rows.push(['host', 'total', '', formatDuration(t.total_ms), '100%']);
  return table(['side', 'span', 'start', 'took', 'share'], rows);
}
