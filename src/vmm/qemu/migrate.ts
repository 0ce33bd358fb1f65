import { operationFailed } from '../../errors.js';
import { qmpCommand } from './qmp.js';

/* Saving and loading a guest's state through QMP migration. qemu 7.2 has no `file:` URI, so the
   state goes through `exec:`, which qemu runs with /bin/sh -c: the path is single-quoted. */

/** `s` as one /bin/sh word. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The migration URI that writes the state to `path` (save) or reads it from `path` (load). */
export function stateUri(op: 'save' | 'load', path: string): string {
  return op === 'save' ? `exec:cat > ${shQuote(path)}` : `exec:cat ${shQuote(path)}`;
}

type Qmp = typeof qmpCommand;

interface MigrateStatus {
  status?: string;
  'error-desc'?: string;
}

const POLL_MS = 50;

/** Polls query-migrate until it completes (or fails, or `timeoutMs` passes). */
async function waitMigration(qmp: Qmp, socket: string, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const st = (await qmp(socket, 'query-migrate')) as MigrateStatus;
    if (st.status === 'completed') return;
    if (st.status === 'failed' || st.status === 'cancelled')
      throw operationFailed(`${what} failed: ${st['error-desc'] ?? st.status}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw operationFailed(`${what} did not finish within ${timeoutMs / 1000} s`);
}

/**
 * What goes into the state: everything, or (ignoreShared) all but guest RAM in a shared file
 * (VmmSpec.memoryFile), which is the file itself. Both sides of one state must agree.
 */
export interface StateOpts {
  ignoreShared?: boolean;
}

const IGNORE_SHARED = { capabilities: [{ capability: 'x-ignore-shared', state: true }] };

/** Stops the guest and writes its state (memory and devices) to `path`; the guest stays stopped. */
export async function saveState(
  socket: string,
  path: string,
  timeoutMs: number,
  opts: StateOpts = {},
  qmp: Qmp = qmpCommand,
): Promise<void> {
  await qmp(socket, 'stop');
  if (opts.ignoreShared) await qmp(socket, 'migrate-set-capabilities', IGNORE_SHARED);
  // The default bandwidth cap (128 MiB/s) is for live migration over a network; a file takes all.
  await qmp(socket, 'migrate-set-parameters', { 'max-bandwidth': 8 * 1024 ** 3 });
  await qmp(socket, 'migrate', { uri: stateUri('save', path) });
  await waitMigration(qmp, socket, 'saving the guest state', timeoutMs);
}

/**
 * Loads the state at `path` into a qemu started with `-incoming defer`, then runs the guest
 * (`cont`: a guest loaded from a stopped one stays paused otherwise).
 */
export async function loadState(
  socket: string,
  path: string,
  timeoutMs: number,
  opts: StateOpts = {},
  qmp: Qmp = qmpCommand,
): Promise<void> {
  if (opts.ignoreShared) await qmp(socket, 'migrate-set-capabilities', IGNORE_SHARED);
  await qmp(socket, 'migrate-incoming', { uri: stateUri('load', path) });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = (await qmp(socket, 'query-status')) as { status?: string };
    if (st.status === 'paused' || st.status === 'postmigrate' || st.status === 'running') break;
    if (st.status === 'internal-error' || st.status === 'shutdown')
      throw operationFailed(`loading the guest state failed (qemu status ${st.status})`);
    if (Date.now() > deadline)
      throw operationFailed(
        `loading the guest state did not finish within ${timeoutMs / 1000} s (qemu status ${st.status ?? '?'})`,
      );
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  await qmp(socket, 'cont');
}
