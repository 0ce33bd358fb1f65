import { errorMessage } from '../errors.js';
import type { Logger } from '../services/context.js';
import type { CheckRow } from '../services/doctor/checks.js';

/**
 * SPEC §9: the daemon runs doctor's checks at start and logs each row (PASS
 * as info, WARN as warn, FAIL as error) plus a count. Never rejects: a check
 * that throws is logged as a warning, so doctor can never take the daemon down.
 */
export async function logDoctorRows(run: () => Promise<readonly CheckRow[]>, log: Logger): Promise<void> {
  try {
    const rows = await run();
    const count = { pass: 0, warn: 0, fail: 0 };
    for (const r of rows) {
      const fields = {
        check: r.name,
        status: r.status,
        detail: r.detail,
        ...(r.fix && r.status !== 'PASS' ? { fix: r.fix } : {}),
      };
      if (r.status === 'FAIL') {
        count.fail++;
        log.error('doctor', fields);
      } else if (r.status === 'WARN') {
        count.warn++;
        log.warn('doctor', fields);
      } else {
        count.pass++;
        log.info('doctor', fields);
      }
    }
    log.info('doctor finished', count);
  } catch (e) {
    log.warn('doctor could not run at start', { error: errorMessage(e) });
  }
}
