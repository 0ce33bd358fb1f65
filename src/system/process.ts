import { readdir, readFile } from 'node:fs/promises';

/**
 * Start time of a process in clock ticks since boot (/proc/<pid>/stat field 22),
 * or undefined when the process does not exist. Together with the pid it
 * identifies one process for good: a reused pid has a different start time.
 */
export async function processStartTime(pid: number): Promise<number | undefined> {
  try {
    return parseStatStartTime(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat; the command name (field 2) may contain spaces and parentheses. */
export function parseStatStartTime(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const v = Number(fields[19]);
  return Number.isFinite(v) ? v : undefined;
}

/** State letter of a process (field 3), e.g. 'Z' for a zombie. */
export async function processState(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

export async function isSameProcessAlive(pid: number, startTime: number): Promise<boolean> {
  const st = await processStartTime(pid);
  if (st === undefined || st !== startTime) return false;
  return (await processState(pid)) !== 'Z';
}

/** True while a process with this pid exists (a zombie included); signal 0 only checks. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Waits until the process is gone (or a zombie), polling; returns false on timeout. */
export async function waitForExit(pid: number, startTime: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isSameProcessAlive(pid, startTime))) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !(await isSameProcessAlive(pid, startTime));
}

/** CPU time (user+system) and resident memory of a process, from /proc. */
export async function processUsage(pid: number): Promise<{ cpuSeconds: number; rssBytes: number } | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * CPU time (utime + stime, in USER_HZ = 100 ticks a second) and resident size
 * (pages of 4 KiB) from the text of /proc/<pid>/stat; undefined when it is not
 * one. The command name (field 2) may hold spaces and parentheses: fields are
 * counted after its last ')'.
 */
export function parseProcStat(text: string): { cpuSeconds: number; rssBytes: number } | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = text
    .slice(close + 2)
    .trim()
    .split(' ');
  // After the name: state is field 3 (f[0]); utime and stime fields 14 and 15 (f[11], f[12]); rss field 24 (f[21]).
  const [utime, stime, rss] = [f[11], f[12], f[21]].map((x) => (x !== undefined && /^\d+$/.test(x) ? Number(x) : NaN));
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(rss)) return undefined;
  return { cpuSeconds: ((utime as number) + (stime as number)) / 100, rssBytes: (rss as number) * 4096 };
}

/** Split a /proc/<pid>/cmdline (NUL-separated, NUL-terminated) into argv. */
export function parseCmdline(raw: string): string[] {
  const parts = raw.split('\0');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** pids of the live processes whose argv matches (read from /proc; processes that vanish meanwhile are skipped). */
export async function findProcesses(match: (argv: string[]) => boolean): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const raw = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (raw && match(parseCmdline(raw))) out.push(Number(e));
  }
  return out;
}

/** The process primitives the VMM drivers use; tests swap them for a fake process. */
export interface ProcessOps {
  startTime(pid: number): Promise<number | undefined>;
  isAlive(pid: number, startTime: number): Promise<boolean>;
  signal(pid: number, sig: NodeJS.Signals): boolean;
  waitForExit(pid: number, startTime: number, timeoutMs: number): Promise<boolean>;
}

export const realProcessOps: ProcessOps = {
  startTime: processStartTime,
  isAlive: isSameProcessAlive,
  signal: signalProcess,
  waitForExit,
};
