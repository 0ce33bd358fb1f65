import type { Db } from './db.js';

export interface OperationRow {
  id: string;
  method: string;
  startedAt: string;
  endedAt: string | undefined;
  status: 'running' | 'ok' | 'error' | 'cancelled';
  error: string | undefined;
}

/** A record of every daemon request (op id ↔ method ↔ outcome) for logs and `daemon.operations.list`. */
export class OperationRepo {
  constructor(private readonly db: Db) {}

  start(id: string, method: string): void {
    this.db
      .prepare(`INSERT INTO operations (id, method, started_at, status) VALUES (?, ?, ?, 'running')`)
      .run(id, method, new Date().toISOString());
  }

  finish(id: string, status: OperationRow['status'], error?: string): void {
    this.db
      .prepare('UPDATE operations SET ended_at = ?, status = ?, error = ? WHERE id = ?')
      .run(new Date().toISOString(), status, error ?? null, id);
  }

  /** Operations a previous daemon left marked running are closed as interrupted. */
  closeInterrupted(): number {
    return this.db
      .prepare(
        `UPDATE operations SET ended_at = ?, status = 'error', error = 'daemon stopped' WHERE status = 'running'`,
      )
      .run(new Date().toISOString()).changes;
  }

  /** Keeps the table from growing without bound. */
  prune(keep = 1000): void {
    this.db
      .prepare(`DELETE FROM operations WHERE id NOT IN (SELECT id FROM operations ORDER BY started_at DESC LIMIT ?)`)
      .run(keep);
  }
}
