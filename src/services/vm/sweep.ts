import type { VmRow } from '../../store/vms.js';
import { quietContext, type Logger, type OpContext } from '../context.js';

/*
 * Sweeps over every VM: auto_stop_stale_after and `vm prune`. Neither touches
 * a paused VM: it was parked on purpose (`vm pause`), its processes kept.
 */

/** What the sweeps need: the VMs, and the lifecycle's stop and delete (VmService). */
export interface SweepDeps {
  vms: { list(): VmRow[] };
  log: Logger;
  stop(id: string, ctx: OpContext): Promise<unknown>;
  delete(id: string, ctx: OpContext): Promise<unknown>;
}

/** The running VMs no banger command touched for longer than maxIdleMs. */
export function staleVms(vms: readonly VmRow[], maxIdleMs: number, now: number): VmRow[] {
  return vms.filter((v) => v.state === 'running' && now - Date.parse(v.updatedAt) > maxIdleMs);
}

/** What `vm prune` deletes: stopped VMs and failed ones, never a live (running or paused) one. */
export function prunableVms(vms: readonly VmRow[]): VmRow[] {
  return vms.filter((v) => v.state === 'stopped' || v.state === 'error');
}

/** auto_stop_stale_after: stops the stale VMs; returns their names. */
export async function stopStale(d: SweepDeps, maxIdleMs: number, now: number): Promise<string[]> {
  const stale = staleVms(d.vms.list(), maxIdleMs, now);
  for (const v of stale) {
    d.log.info('stopping a VM untouched for longer than auto_stop_stale_after', { name: v.name });
    await d
      .stop(v.id, quietContext('auto-stop'))
      .catch((e: unknown) => d.log.warn('auto-stop failed', { name: v.name, error: String(e) }));
  }
  return stale.map((v) => v.name);
}

/** Deletes every prunable VM; returns their names. */
export async function prune(d: SweepDeps, ctx: OpContext): Promise<{ deleted: string[] }> {
  const victims = prunableVms(d.vms.list());
  for (const v of victims) await d.delete(v.id, ctx);
  return { deleted: victims.map((v) => v.name) };
}
