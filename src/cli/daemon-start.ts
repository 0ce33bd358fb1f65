import { open, stat } from 'node:fs/promises';
import { AppError } from '../errors.js';
import { processState } from '../system/process.js';

/** How much of the daemon log's new output is read when the daemon died at start. */
const MAX_LOG_TAIL = 64 * 1024;

/**
 * Validates config.toml with the daemon's own parser before a daemon is
 * started, so a bad key or value is named at once instead of showing as a
 * start timeout. Loaded on demand: the parser (zod) would slow every other
 * command's start.
 */
export async function checkConfigBeforeStart(configFile: string): Promise<void> {
  const [{ loadConfigFile }, { HostProbe }] = await Promise.all([
    import('../config/read-file.js'),
    import('../system/host.js'),
  ]);
  await loadConfigFile(configFile, new HostProbe());
}

/** Size of the daemon log before a start, so only what the new daemon wrote is read back. */
export async function logSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/**
 * The error a daemon that died while starting left in its log: bangerd's
 * reportFatal writes `bangerd: <message>` and optionally `hint: <hint>`.
 * Without such a line the last log line is shown.
 */
export function startFailure(logText: string, logPath: string): AppError {
  const lines = logText
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '');
  let at = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]?.startsWith('bangerd: ')) {
      at = i;
      break;
    }
  }
  const seeLog = `the daemon log is ${logPath}`;
  if (at < 0) {
    const last = lines.at(-1);
    return new AppError(
      'operation_failed',
      last
        ? `bangerd exited while starting; its log ends with: ${last}`
        : 'bangerd exited while starting without saying why',
      { hint: seeLog },
    );
  }
  const message = (lines[at] as string).slice('bangerd: '.length).replace(/^fatal: /, '');
  const hint = lines.slice(at + 1).find((l) => l.startsWith('hint: '));
  return new AppError('operation_failed', `bangerd exited while starting: ${message}`, {
    hint: hint ? `${hint.slice('hint: '.length)} (${seeLog})` : seeLog,
  });
}

/**
 * When the daemon process `pid` is gone (or a zombie), the error it logged
 * after byte `logOffset` of its log; undefined while it still runs.
 */
export async function exitedAtStart(pid: number, logPath: string, logOffset: number): Promise<AppError | undefined> {
  const state = await processState(pid);
  if (state !== undefined && state !== 'Z') return undefined;
  let text = '';
  try {
    const fh = await open(logPath, 'r');
    try {
      const size = (await fh.stat()).size;
      const from = Math.max(logOffset, size - MAX_LOG_TAIL);
      const buf = Buffer.alloc(Math.max(0, size - from));
      const { bytesRead } = await fh.read(buf, 0, buf.length, from);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    /* no log: say so below */
  }
  return startFailure(text, logPath);
}
