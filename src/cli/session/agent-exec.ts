import type { ExecInFrame } from '../../api/methods.js';
import type { DaemonClient } from '../client.js';
import type { StreamCall } from '../stream-call.js';

/*
 * A command (or login shell) in a VM through its guest agent (vm.exec), with
 * the behaviour of the OpenSSH path: a terminal when stdin is one (raw mode
 * here, restored on every way out; window changes follow; Ctrl-C is the ^C
 * byte the guest's terminal turns into SIGINT), else pipes (stdin closed at
 * its end; Ctrl-C sends SIGINT to the guest command and banger exits 130).
 * Exit status verbatim; killed by signal N → 128+N.
 */

/** Bytes of stdin per frame (the frame schema takes 64 KiB of base64). */
const STDIN_CHUNK = 32 * 1024;
/** After Ctrl-C without a terminal, how long the guest command gets to end before banger disconnects (which kills it). */
const INTERRUPT_GRACE_MS = 2000;

export interface AgentSessionOptions {
  ref: string;
  /** Absent: the user's login shell. Passed as the argv, exactly. */
  argv?: string[] | undefined;
  env: readonly [string, string][];
  tty: boolean;
  /** The directory to run in (a workspace); absent: the image's WorkingDir or home. */
  cwd?: string | undefined;
}

export interface AgentSessionIO {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  /** Where SIGINT, SIGWINCH and friends arrive (the process). */
  signals: NodeJS.EventEmitter;
  term: string | undefined;
}

export interface AgentSessionResult {
  code: number;
  /** Ctrl-C without a terminal ended the session (the caller prints "interrupted", exit 130). */
  interrupted: boolean;
}

function writeOut(w: NodeJS.WritableStream, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (w.write(data)) return resolve();
    w.once('drain', resolve);
  });
}

/** Copies local stdin to the call (its end too, without a terminal); stops when `stopped` says so. */
async function pumpStdin(
  stdin: NodeJS.ReadStream,
  call: StreamCall<ExecInFrame, unknown>,
  tty: boolean,
  stopped: () => boolean,
): Promise<void> {
  for await (const raw of stdin as AsyncIterable<Buffer>) {
    const chunk = Buffer.from(raw);
    for (let off = 0; off < chunk.length; off += STDIN_CHUNK) {
      if (stopped()) return;
      await call.send({ stdin: chunk.subarray(off, off + STDIN_CHUNK).toString('base64') });
    }
  }
  if (!tty && !stopped()) await call.send({ eof: true });
}

export async function runAgentSession(
  client: DaemonClient,
  o: AgentSessionOptions,
  io: AgentSessionIO = {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    signals: process,
    term: process.env.TERM,
  },
): Promise<AgentSessionResult> {
  const env: Record<string, string> = {};
  if (o.tty && io.term) env.TERM = io.term;
  for (const [k, v] of o.env) env[k] = v;
  const size = (): { rows: number; cols: number } =>
    io.stdout.isTTY ? { rows: io.stdout.rows, cols: io.stdout.columns } : { rows: 0, cols: 0 };
  const call = client.stream(
    'vm.exec',
    {
      ref: o.ref,
      ...(o.argv ? { argv: o.argv } : {}),
      ...(o.cwd ? { cwd: o.cwd } : {}),
      env,
      tty: o.tty,
      ...(o.tty ? size() : {}),
    },
    {
      onFrame: (f) =>
        'stdout' in f
          ? writeOut(io.stdout, Buffer.from(f.stdout, 'base64'))
          : writeOut(io.stderr, Buffer.from(f.stderr, 'base64')),
    },
  );
  let finished = false;
  let interrupted = false;
  let graceTimer: NodeJS.Timeout | undefined;
  const raw = o.tty && io.stdin.isTTY;
  const restore = (): void => {
    if (raw) io.stdin.setRawMode(false);
  };
  const onResize = (): void => {
    const s = size();
    if (s.rows > 0 && s.cols > 0) void call.send({ resize: s });
  };
  const onSigint = (): void => {
    // Only without a terminal: in raw mode Ctrl-C is a byte on stdin.
    interrupted = true;
    void call.send({ signal: 'SIGINT' });
    graceTimer ??= setTimeout(() => call.close(), INTERRUPT_GRACE_MS);
  };
  const onHangup = (): void => call.close();
  if (raw) {
    io.stdin.setRawMode(true);
    process.once('exit', restore);
  }
  io.signals.on('SIGINT', onSigint);
  io.signals.on('SIGTERM', onHangup);
  io.signals.on('SIGHUP', onHangup);
  if (o.tty) io.stdout.on('resize', onResize);
  const pumping = pumpStdin(io.stdin, call, o.tty, () => finished).catch(() => undefined);
  try {
    const r = await call.result;
    if (interrupted) return { code: 130, interrupted: true };
    return { code: r.exit_code ?? 128 + (r.signal ?? 0), interrupted: false };
  } catch (e) {
    if (interrupted) return { code: 130, interrupted: true };
    throw e;
  } finally {
    finished = true;
    clearTimeout(graceTimer);
    io.signals.off('SIGINT', onSigint);
    io.signals.off('SIGTERM', onHangup);
    io.signals.off('SIGHUP', onHangup);
    io.stdout.off('resize', onResize);
    restore();
    process.off('exit', restore);
    // Reading stdin keeps the process alive; whatever it still held is the guest's no more.
    io.stdin.pause();
    io.stdin.destroy();
    void pumping;
  }
}
