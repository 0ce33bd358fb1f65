import type { Params, VmView } from '../../api/methods.js';
import { badRequest } from '../../errors.js';
import type { LifetimeRepo, VmLifetime } from '../../store/lifetimes.js';
import type { VmRepo, VmRow } from '../../store/vms.js';
import { formatMs } from '../../agent/connection.js';
import type { Logger, OpContext } from '../context.js';
import { KeyedLock } from '../keylock.js';

/*
 * VM lifetimes (issue 19): a VM created with `ttl_ms` is stopped once that
 * long has passed since its create, one with `idle_ttl_ms` once it went that
 * long without use (no banger command touched it, no daemon-side process ran);
 * an `rm` VM is deleted instead. The rules live in the store (migration 9),
 * so a restarted daemon goes on enforcing them. vm.create's idempotency key
 * is handled here too: a retry with the same key returns the VM it made.
 */

export type ReapAction = { action: 'stop' | 'delete'; why: 'ttl' | 'idle_ttl'; message: string } | undefined;

/** What the reaper does with one VM now (pure): nothing, or stop/delete and which limit fired. */
export function reapDecision(
  l: VmLifetime,
  vm: Pick<VmRow, 'state' | 'updatedAt'>,
  lastUse: number | undefined,
  now: number,
): ReapAction {
  const action = l.rm ? 'delete' : 'stop';
  if (l.deadlineAt !== undefined && now >= l.deadlineAt && (vm.state === 'running' || l.rm))
    return { action, why: 'ttl', message: `its ttl ran out` };
  if (l.idleTtlMs !== undefined && vm.state === 'running') {
    const used = Math.max(lastUse ?? 0, Date.parse(vm.updatedAt) || 0);
    if (now - used >= l.idleTtlMs)
      return { action, why: 'idle_ttl', message: `it was idle for its idle_ttl (${formatMs(l.idleTtlMs)})` };
  }
  return undefined;
}

export interface VmReaperDeps {
  lifetimes: Pick<LifetimeRepo, 'list' | 'set' | 'clearDeadline' | 'keyed' | 'remember'>;
  vms: Pick<VmRepo, 'get'>;
  /** The last use of the VM by a daemon-side process (processes.ts). */
  lastUse: (vmId: string) => number | undefined;
  /** Ends the VM's daemon-side processes with this reason before it goes. */
  endProcesses: (vmId: string, why: string) => void;
  stop: (id: string) => Promise<unknown>;
  delete: (id: string) => Promise<unknown>;
  log: Logger;
}

export class VmReaper {
  private readonly keys = new KeyedLock();
  private sweeping = false;

  constructor(private readonly d: VmReaperDeps) {}

  /** Applies every rule once; returns what it did (name → action). */
  async sweep(now = Date.now()): Promise<string[]> {
    if (this.sweeping) return [];
    this.sweeping = true;
    const done: string[] = [];
    try {
      for (const l of this.d.lifetimes.list()) {
        const vm = this.d.vms.get(l.vmId);
        if (!vm) continue;
        const r = reapDecision(l, vm, this.d.lastUse(vm.id), now);
        if (!r) {
          if (l.deadlineAt !== undefined && now >= l.deadlineAt) this.d.lifetimes.clearDeadline(vm.id);
          continue;
        }
        const why = `VM "${vm.name}" was ${r.action === 'stop' ? 'stopped' : 'deleted'}: ${r.message} (${r.why})`;
        this.d.log.info(why, { name: vm.name });
        this.d.endProcesses(vm.id, why);
        try {
          if (r.action === 'delete') await this.d.delete(vm.id);
          else await this.d.stop(vm.id);
          if (r.why === 'ttl') this.d.lifetimes.clearDeadline(vm.id);
          done.push(`${vm.name}: ${r.action} (${r.why})`);
        } catch (e) {
          this.d.log.warn('reaper could not end a VM', { name: vm.name, error: String(e) });
        }
      }
    } finally {
      this.sweeping = false;
    }
    return done;
  }

  /**
   * vm.create with its lifetime fields and idempotency key: a key seen in the last 24 h returns
   * that VM (`show`) without creating another; concurrent retries with one key wait for the first.
   */
  async create(
    p: Params<'vm.create'>,
    ctx: OpContext,
    create: (p: Params<'vm.create'>, ctx: OpContext) => Promise<VmView>,
    show: (id: string) => Promise<VmView>,
  ): Promise<VmView> {
    const { idempotency_key: key, ttl_ms, idle_ttl_ms, rm, ...rest } = p;
    if (rm && ttl_ms === undefined && idle_ttl_ms === undefined)
      throw badRequest('rm needs ttl_ms or idle_ttl_ms', 'say when the VM should be deleted');
    const run = async (): Promise<VmView> => {
      const known = key === undefined ? undefined : this.d.lifetimes.keyed(key);
      if (known !== undefined && this.d.vms.get(known)) return show(known);
      const view = await create(rest, ctx);
      if (ttl_ms !== undefined || idle_ttl_ms !== undefined || rm)
        this.d.lifetimes.set({
          vmId: view.id,
          deadlineAt: ttl_ms === undefined ? undefined : Date.now() + ttl_ms,
          idleTtlMs: idle_ttl_ms,
          rm: rm ?? false,
        });
      if (key !== undefined) this.d.lifetimes.remember(key, view.id);
      return view;
    };
    return key === undefined ? run() : this.keys.run(key, run);
  }
}
