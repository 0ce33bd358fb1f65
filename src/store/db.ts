import Database from 'better-sqlite3';
import { chmodSync, closeSync, constants, openSync, statSync } from 'node:fs';
import { AppError } from '../errors.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';

export type Db = Database.Database;

const DB_MODE = 0o600;

/**
 * The database may hold registry URLs with tokens: it is created 0600 before
 * SQLite opens it (SQLite gives the -wal and -shm files the mode of the
 * database), and files an older banger left looser are tightened.
 */
function makePrivate(file: string): void {
  closeSync(openSync(file, constants.O_RDWR | constants.O_CREAT, DB_MODE));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      if ((statSync(f).mode & 0o777) !== DB_MODE) chmodSync(f, DB_MODE);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

/** Opens (creating if needed, 0600) and migrates the store. `:memory:` works for tests. */
export function openStore(file: string, opts: { readonly?: boolean } = {}): Db {
  if (!opts.readonly && file !== ':memory:') makePrivate(file);
  const db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  if (opts.readonly) return db;
  db.pragma('journal_mode = WAL');
  migrate(db);
  return db;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

export function migrate(db: Db): void {
  const current = schemaVersion(db);
  if (current > SCHEMA_VERSION) {
    throw new AppError(
      'bad_version',
      `the state database is at schema ${current}, newer than this banger (${SCHEMA_VERSION})`,
      {
        hint: 'install the newer banger that wrote it, or move the state directory aside',
      },
    );
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    const sql = MIGRATIONS[v];
    if (sql === undefined) break;
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
