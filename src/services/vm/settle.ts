import { stat } from 'node:fs/promises';
import type { AgentClient } from '../../agent/client.js';
import { GATE_UNIT } from '../../guest/assets.js';

/* When a template boot has settled (issue 17): systemd has run every job it can, and what is left
   waits on banger's gate. The template is saved then, so a restore boots none of it again. */

/** A job line of `systemctl list-jobs --no-legend`: JOB UNIT TYPE STATE. */
interface Job {
  unit: string;
  state: string;
}

export function parseJobs(out: string): Job[] {
  const jobs: Job[] = [];
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || !/^\d+$/.test(f[0] as string)) continue;
    jobs.push({ unit: f[1] as string, state: f[3] as string });
  }
  return jobs;
}

/** The units systemd is still working on, the gate itself aside (it waits for the host). */
export function busyUnits(out: string): string[] {
  return parseJobs(out)
    .filter((j) => j.state !== 'waiting' && j.unit !== GATE_UNIT)
    .map((j) => j.unit);
}

const LIST_JOBS = ['systemctl', 'list-jobs', '--no-legend', '--no-pager'];
const POLL_MS = 250;
/** Consecutive idle polls before the boot counts as settled (a unit may queue the next one). */
const IDLE_POLLS = 2;

/**
 * Polls the guest's job queue through its agent until only gated work is left, at most `maxMs`.
 * Returns 'settled', 'timeout', or 'no-systemd' (the command failed: banger-init as PID 1, say).
 */
export async function waitSettled(
  client: Pick<AgentClient, 'exec'>,
  maxMs: number,
  signal: AbortSignal,
): Promise<'settled' | 'timeout' | 'no-systemd'> {
  const deadline = Date.now() + maxMs;
  let idle = 0;
  while (Date.now() < deadline && !signal.aborted) {
    const x = client.exec({ argv: LIST_JOBS, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    const chunks: Buffer[] = [];
    let size = 0;
    x.stdout.on('data', (b: Buffer) => {
      if (size < 65536) chunks.push(b);
      size += b.length;
    });
    x.stderr.resume();
    const status = await x.exit.catch(() => undefined);
    if (!status || status.kind !== 'exited' || status.code !== 0) return 'no-systemd';
    idle = busyUnits(Buffer.concat(chunks).toString('utf8')).length === 0 ? idle + 1 : 0;
    if (idle >= IDLE_POLLS) return 'settled';
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return 'timeout';
}

/** Waits until `file` has not grown for `quietMs`, or `maxMs` passed. */
export async function consoleQuiet(file: string, quietMs: number, maxMs: number, signal: AbortSignal): Promise<void> {
  const start = Date.now();
  let size = -1;
  let since = start;
  while (Date.now() - start < maxMs && !signal.aborted) {
    const now = (await stat(file).catch(() => undefined))?.size ?? 0;
    if (now !== size) {
      size = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}
