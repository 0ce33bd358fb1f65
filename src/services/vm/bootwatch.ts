import { open, stat } from 'node:fs/promises';
import { AppError, cancelled } from '../../errors.js';

export interface BootWatchInput {
  vmName: string;
  consoleLog: string;
  timeoutMs: number;
  /** A console that stops growing this long before sshd answers is a stuck boot (SPEC §4). */
  stallMs: number;
  pollMs?: number;
  signal: AbortSignal;
  isAlive(): Promise<boolean>;
  /** 'banner' once sshd answers, 'ready' once a command ran over ssh. */
  probe(): Promise<'none' | 'banner' | 'ready'>;
  now?: () => number;
}

export type BootFailureKind = 'exited' | 'stuck' | 'ssh_timeout';

/** A boot that did not reach ssh; `kind` decides whether the VM is kept. */
export class BootFailure extends AppError {
  constructor(
    readonly kind: BootFailureKind,
    message: string,
    hint: string,
    detail: string,
  ) {
    super('operation_failed', message, { hint, detail });
  }
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\r/g;

/** Last lines of the console log, without terminal escapes. */
export async function consoleTail(path: string, lines = 12): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const len = Math.min(size, 16384);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      return buf
        .toString('utf8')
        .replace(ANSI, '')
        .split('\n')
        .map((l) => l.trimEnd())
        .filter((l) => l.length > 0)
        .slice(-lines)
        .join('\n');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** Waits until ssh works, the VMM exits, the console stalls, or the timeout passes. */
export async function waitForSsh(i: BootWatchInput): Promise<void> {
  const now = i.now ?? Date.now;
  const start = now();
  let lastSize = -1;
  let lastGrowth = start;
  let bannerSeen = false;
  const logsHint = `run \`banger vm logs ${i.vmName}\` to see the whole console`;
  for (;;) {
    if (i.signal.aborted) throw cancelled();
    if (!(await i.isAlive())) {
      const tail = await consoleTail(i.consoleLog);
      throw new BootFailure(
        'exited',
        `VM "${i.vmName}" stopped during boot`,
        `${logsHint}; the console ended with:\n${tail}`,
        tail,
      );
    }
    const size = await sizeOf(i.consoleLog);
    if (size !== lastSize) {
      lastSize = size;
      lastGrowth = now();
    }
    const state = await i.probe();
    if (state === 'ready') return;
    if (state === 'banner') bannerSeen = true;
    const t = now();
    if (!bannerSeen && t - lastGrowth > i.stallMs) {
      const tail = await consoleTail(i.consoleLog);
      throw new BootFailure(
        'stuck',
        `VM "${i.vmName}" made no boot progress for ${Math.round(i.stallMs / 1000)} s (console silent, sshd not up)`,
        `${logsHint}; the console ended with:\n${tail}`,
        tail,
      );
    }
    if (t - start > i.timeoutMs) {
      const tail = await consoleTail(i.consoleLog);
      throw new BootFailure(
        'ssh_timeout',
        `VM "${i.vmName}" did not accept ssh within ${Math.round(i.timeoutMs / 1000)} s; sshd in the guest is the likely cause`,
        `the VM is kept for inspection: ${logsHint}, then \`banger vm delete ${i.vmName}\``,
        tail,
      );
    }
    await new Promise((r) => setTimeout(r, i.pollMs ?? 500));
  }
}
