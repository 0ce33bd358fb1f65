import type { Db } from './db.js';

/** A VM's lifetime rules: stop (or delete, with rm) at deadline_at, or after idle_ttl_ms without use. */
export interface VmLifetime {
  vmId: string;
  /** When its ttl runs out (ms since the epoch); cleared once enforced. */
  deadlineAt: number | undefined;
  idleTtlMs: number | undefined;
  rm: boolean;
}

interface Raw {
  vm_id: string;
  deadline_at: string | null;
  idle_ttl_ms: number | null;
  rm: number;
}

/** How long vm.create remembers an idempotency key. */
export const IDEMPOTENCY_KEEP_MS = 24 * 3600 * 1000;

/** VM lifetimes and vm.create's idempotency keys (migration 9); both go with their VM. */
export class LifetimeRepo {
  constructor(private readonly db: Db) {}

  set(l: VmLifetime): void {
    this.db
      .prepare(
        `INSERT INTO vm_lifetimes (vm_id, deadline_at, idle_ttl_ms, rm) VALUES (?, ?, ?, ?)
         ON CONFLICT(vm_id) DO UPDATE SET deadline_at = excluded.deadline_at, idle_ttl_ms = excluded.idle_ttl_ms, rm = excluded.rm`,
      )
      .run(
        l.vmId,
        l.deadlineAt === undefined ? null : new Date(l.deadlineAt).toISOString(),
        l.idleTtlMs ?? null,
        l.rm ? 1 : 0,
      );
  }

  get(vmId: string): VmLifetime | undefined {
    const r = this.db.prepare('SELECT * FROM vm_lifetimes WHERE vm_id = ?').get(vmId) as Raw | undefined;
    return r && lifetime(r);
  }

  list(): VmLifetime[] {
    return (this.db.prepare('SELECT * FROM vm_lifetimes ORDER BY vm_id').all() as Raw[]).map(lifetime);
  }

  clearDeadline(vmId: string): void {
    this.db.prepare('UPDATE vm_lifetimes SET deadline_at = NULL WHERE vm_id = ?').run(vmId);
  }

  /** The VM a key created, while the key is younger than IDEMPOTENCY_KEEP_MS. */
  keyed(key: string, now = Date.now()): string | undefined {
    this.db
      .prepare('DELETE FROM idempotency_keys WHERE created_at < ?')
      .run(new Date(now - IDEMPOTENCY_KEEP_MS).toISOString());
    const r = this.db.prepare('SELECT vm_id FROM idempotency_keys WHERE key = ?').get(key) as
      { vm_id: string } | undefined;
    return r?.vm_id;
  }

  remember(key: string, vmId: string, now = Date.now()): void {
    this.db
      .prepare('INSERT OR REPLACE INTO idempotency_keys (key, vm_id, created_at) VALUES (?, ?, ?)')
      .run(key, vmId, new Date(now).toISOString());
  }
}

function lifetime(r: Raw): VmLifetime {
  return {
    vmId: r.vm_id,
    deadlineAt: r.deadline_at === null ? undefined : Date.parse(r.deadline_at),
    idleTtlMs: r.idle_ttl_ms ?? undefined,
    rm: r.rm === 1,
  };
}
