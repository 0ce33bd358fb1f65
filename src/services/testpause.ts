import type { Logger } from './context.js';

/**
 * TEST-ONLY pause points. When the daemon's environment has
 * BANGER_TEST_PAUSE=<point>[,<point>…] (only the fault tests set it), the
 * daemon logs `test pause: <point>` on reaching a listed point and waits
 * there, so a test can kill -9 it inside a window that is otherwise a few
 * milliseconds wide. The wait ends by itself after PAUSE_MS. Without the
 * variable a pause point costs nothing.
 *
 * Points: `after-spawn` — the VMM process exists and its handles are
 * recorded, its control socket is not up yet; `vm-delete` — delete has
 * stopped the VMM, the row and files are not removed yet; `template-save` — a template build's
 * guest is up (its VMM's handles recorded), the save has not begun; `after-restore` — a restored
 * guest runs, its identity is not applied yet; `snapshot-saved` — a snapshot stopped its VM and
 * saved the guest state, its disks are not copied and the VM not resumed yet.
 */
export type PausePoint = 'after-spawn' | 'vm-delete' | 'template-save' | 'after-restore' | 'snapshot-saved';
export type Pause = (point: PausePoint) => Promise<void>;

const PAUSE_MS = 10 * 60_000;

export const noPause: Pause = async () => undefined;

export function testPauses(value: string | undefined, log: Logger, pauseMs = PAUSE_MS): Pause {
  const points = new Set(
    (value ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean),
  );
  if (points.size === 0) return noPause;
  log.warn('BANGER_TEST_PAUSE is set: this daemon stops at test pause points (test-only)', { points: [...points] });
  return async (point) => {
    if (!points.has(point)) return;
    log.warn(`test pause: ${point}`, { pid: process.pid });
    await new Promise((r) => setTimeout(r, pauseMs));
  };
}
