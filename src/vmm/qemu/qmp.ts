import { createConnection } from 'node:net';
import { operationFailed } from '../../errors.js';
import type { VmmRunState } from '../driver.js';

/**
 * Minimal QMP client: connect, negotiate capabilities, run one command, close.
 * QMP is newline-delimited JSON; asynchronous events are skipped.
 */
export function qmpCommand(
  socket: string,
  execute: string,
  args?: Record<string, unknown>,
  timeoutMs = 5000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket);
    let buf = '';
    let stage: 'greeting' | 'caps' | 'cmd' = 'greeting';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(operationFailed(`QMP ${execute} on ${socket} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (err: Error | undefined, value?: unknown): void => {
      clearTimeout(timer);
      conn.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    conn.on('error', (e) => done(operationFailed(`QMP connection to ${socket} failed: ${e.message}`)));
    conn.on('close', () => {
      // `quit` closes the socket before or instead of answering.
      if (stage === 'cmd' && execute === 'quit') done(undefined, {});
    });
    conn.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (!line) continue;
        let msg: { QMP?: unknown; return?: unknown; error?: { desc?: string }; event?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          continue;
        }
        if (msg.event) continue;
        if (stage === 'greeting' && msg.QMP) {
          stage = 'caps';
          conn.write(`${JSON.stringify({ execute: 'qmp_capabilities' })}\n`);
        } else if (stage === 'caps') {
          stage = 'cmd';
          conn.write(`${JSON.stringify(args ? { execute, arguments: args } : { execute })}\n`);
        } else if (stage === 'cmd') {
          if (msg.error) done(operationFailed(`QMP ${execute} failed: ${msg.error.desc ?? 'unknown error'}`));
          else done(undefined, msg.return);
        }
      }
    });
  });
}

/**
 * The run state in a `query-status` reply ({"status": "paused", "running": false, ...}):
 * "paused" is only what `stop` leaves; every other stopped status (shutdown,
 * internal-error, inmigrate ...) is 'other'.
 */
export function qmpRunState(reply: unknown): VmmRunState {
  const r = reply as { status?: unknown; running?: unknown } | null | undefined;
  if (r?.status === 'running' && r.running === true) return 'running';
  if (r?.status === 'paused' && r.running === false) return 'paused';
  return 'other';
}
