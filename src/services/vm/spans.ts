import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { BootSpan, BootTimings } from '../../api/views.js';
import type { VmRepo } from '../../store/vms.js';
import { vmFiles, type Paths } from '../../system/paths.js';
import type { OpContext } from '../context.js';

/* Where a boot's seconds go (issue 16): host-side spans timed by the daemon, guest-side ones read
   from the console's kernel timestamps and the agent's uptime at first contact. Pure but the clock. */

/** Times the host-side steps of one boot, in order; each span ends when the next starts or on finish. */
export class SpanRecorder {
  private readonly t0: number;
  private readonly spans: BootSpan[] = [];
  private open: { name: string; start: number } | undefined;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly wallClock: () => Date = () => new Date(),
  ) {
    this.t0 = now();
  }

  /** Ends the open span (if any) and opens `name`. */
  mark(name: string): void {
    this.close();
    this.open = { name, start: this.now() };
  }

  /** `fn` as a span of its own (the open one, if any, ends first). */
  async time<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.mark(name);
    try {
      return await fn();
    } finally {
      this.close();
    }
  }

  /** Milliseconds since the recorder started. */
  elapsed(): number {
    return this.now() - this.t0;
  }

  /** The host spans so far (the open one closed) plus `guest`, with the total. */
  finish(guest: readonly BootSpan[] = []): BootTimings {
    this.close();
    return { at: this.wallClock().toISOString(), total_ms: round(this.elapsed()), spans: [...this.spans, ...guest] };
  }

  private close(): void {
    if (!this.open) return;
    const end = this.now();
    this.spans.push({
      side: 'host',
      name: this.open.name,
      start_ms: round(this.open.start - this.t0),
      ms: round(end - this.open.start),
    });
    this.open = undefined;
  }
}

const round = (ms: number): number => Math.max(0, Math.round(ms));

/** An OpContext that may carry a boot's span recorder (create and start give one). */
export type TimedContext = OpContext & { spans?: SpanRecorder };

/** `ctx` with a fresh recorder. */
export const withSpans = (ctx: OpContext, rec = new SpanRecorder()): TimedContext => ({ ...ctx, spans: rec });

/** `fn` as the span `name` when `ctx` records spans, else just `fn`. */
export function timed<T>(ctx: OpContext, name: string, fn: () => Promise<T>): Promise<T> {
  const rec = (ctx as TimedContext).spans;
  return rec ? rec.time(name, fn) : fn();
}

/** Opens the span `name` (ended by the next one) when `ctx` records spans. */
export function mark(ctx: OpContext, name: string): void {
  (ctx as TimedContext).spans?.mark(name);
}

/** What the guest console says, strictly in this order (a later one before an earlier one does not count). */
const MILESTONES: readonly { name: string; re: RegExp }[] = [
  { name: 'kernel', re: /\bRun \S+ as init process/ },
  { name: 'initramfs', re: /\bsystemd\[1\]: / },
];

const STAMP = /^\[\s*(\d+)\.(\d{1,9})\]\s?(.*)$/;
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\r/g;

/**
 * Guest spans from a console log: kernel start → `/init` ("kernel"), `/init` → the real init's first
 * kernel-log line ("initramfs"), and, given the agent's uptime when it first answered, the real init →
 * agent ("userspace to agent"). Lines without a `[ s.us ]` kernel timestamp are skipped; a milestone
 * that never shows is left out. Offsets are guest-clock milliseconds since the kernel started.
 */
export function guestSpans(consoleText: string, agentUptimeMs?: number): BootSpan[] {
  const found: { name: string; at: number }[] = [];
  let next = 0;
  for (const raw of consoleText.split('\n')) {
    if (next >= MILESTONES.length) break;
    const m = STAMP.exec(raw.replace(ANSI, ''));
    if (!m) continue;
    const at = Number(m[1]) * 1000 + Number(`0.${m[2]}`) * 1000;
    const want = MILESTONES[next] as { name: string; re: RegExp };
    if (want.re.test(m[3] ?? '')) {
      found.push({ name: want.name, at });
      next++;
    }
  }
  const spans: BootSpan[] = [];
  let prev = 0;
  for (const f of found) {
    spans.push({ side: 'guest', name: f.name, start_ms: round(prev), ms: round(f.at - prev) });
    prev = f.at;
  }
  if (agentUptimeMs !== undefined && agentUptimeMs >= prev) {
    spans.push({ side: 'guest', name: 'userspace to agent', start_ms: round(prev), ms: round(agentUptimeMs - prev) });
  }
  return spans;
}

/** How much of the console's start is searched for the milestones (they come early). */
const CONSOLE_HEAD_BYTES = 1 << 20;

async function readHead(path: string, max: number): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(max);
      const { bytesRead } = await fh.read(buf, 0, max, 0);
      return buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

/** Ends the boot's spans (when `ctx` records them), adds the guest's from its console log, and keeps them on the VM row. */
export async function recordBoot(
  d: { vms: Pick<VmRepo, 'setBootTimings'>; paths: Pick<Paths, 'vmDir'> },
  id: string,
  ctx: OpContext,
  agentUptimeMs: number | undefined,
): Promise<void> {
  const rec = (ctx as TimedContext).spans;
  if (!rec) return;
  const consoleLog = join(d.paths.vmDir(id), vmFiles.console);
  const guest = guestSpans(await readHead(consoleLog, CONSOLE_HEAD_BYTES), agentUptimeMs);
  d.vms.setBootTimings(id, rec.finish(guest));
}
