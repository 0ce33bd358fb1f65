import type { Duplex } from 'node:stream';
import { encodeData, encodeFrame, MAX_FRAME_PAYLOAD, type FrameStream } from '../../api/binframes.js';
import type { Params } from '../../api/methods.js';
import { HEADER_PROC_ID } from '../../api/protocol.js';
import { cancelled, precondition } from '../../errors.js';
import type { OpContext } from '../context.js';
import type { GuestProcess, VmProcesses } from './processes.js';

/*
 * Live output of daemon-side processes: proc.stream (binary frames with offsets,
 * api/binframes.ts) and proc.pty (raw terminal bytes both ways over an upgraded
 * connection). Both follow the process's buffers from an offset until it ends;
 * a client that goes away detaches: the process runs on.
 */

/** How long a follower sleeps between looks when nothing happens (it also wakes at output and at the end). */
const IDLE_MS = 30_000;

/**
 * proc.stream: what each asked stream holds from its offset (an evicted offset: an evicted frame,
 * then from the oldest kept byte), then live output, then the exit frame. Returns early when the client
 * is gone (`signal`); the process is not touched.
 */
export async function streamFrames(
  proc: GuestProcess,
  p: Params<'proc.stream'>,
  signal: AbortSignal,
  write: (b: Buffer) => Promise<void>,
): Promise<void> {
  const streams: FrameStream[] = p.streams ?? ['stdout', 'stderr'];
  const at: Record<FrameStream, number> = { stdout: p.stdout_offset ?? 0, stderr: p.stderr_offset ?? 0 };
  await write(Buffer.alloc(0)); // the 200: a process that is quiet for now still has an open stream
  while (!signal.aborted) {
    let sent = false;
    for (const s of streams) {
      const r = proc[s].read(at[s], MAX_FRAME_PAYLOAD);
      if (r.evicted) await write(encodeFrame({ kind: 'evicted', stream: s, offset: r.offset, lost: r.lost }));
      if (r.data.length > 0) {
        await write(Buffer.concat(encodeData(s, r.offset, r.data)));
        sent = true;
      }
      at[s] = r.next;
      if (signal.aborted) return;
    }
    if (sent) continue;
    // Nothing new since the reads above (no await in between): all output is in once it ended.
    if (proc.state === 'exited') return void (await write(encodeFrame({ kind: 'exit', status: proc.status() })));
    await proc.changed(IDLE_MS, signal);
  }
}

/** Writes to a socket and resolves once it can take more (or is gone). */
function drained(sock: Duplex, b: Buffer): Promise<void> {
  if (sock.destroyed || sock.write(b)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

/**
 * Raw terminal bytes between a socket and a process on a terminal: its output from `offset` (an
 * evicted start is skipped silently: the raw stream has no room to say so; proc.read does), the
 * socket's bytes to its stdin (the socket is paused while stdin is full). Ends the socket when the
 * process ended and its output is out; returns when the socket went away (`signal`).
 */
export async function pumpPty(proc: GuestProcess, sock: Duplex, offset: number, signal: AbortSignal): Promise<void> {
  const stdin = proc.stdin;
  sock.on('data', (d: Buffer) => {
    if (!stdin || stdin.destroyed || stdin.writableEnded) return;
    if (!stdin.write(d)) {
      sock.pause();
      stdin.once('drain', () => sock.resume());
    }
  });
  sock.resume();
  let at = offset;
  while (!signal.aborted && !sock.destroyed) {
    const r = proc.stdout.read(at, MAX_FRAME_PAYLOAD);
    at = r.next;
    if (r.data.length > 0) {
      await drained(sock, r.data);
      continue;
    }
    if (proc.state === 'exited') {
      await new Promise<void>((resolve) => sock.end(resolve));
      return;
    }
    await proc.changed(IDLE_MS, signal);
  }
}

/** proc.pty: a new command on a terminal, or an existing terminal process, over a raw upgraded connection. */
export async function servePty(
  procs: VmProcesses,
  p: Params<'proc.pty'>,
  ctx: OpContext,
  up: { open(headers: Record<string, string>): Duplex },
): Promise<void> {
  let proc: GuestProcess;
  let offset = 0;
  if ('id' in p) {
    proc = procs.get(p.id);
    if (!proc.tty) throw precondition(`process ${p.id} is not on a terminal`, 'attach to it with proc.stream');
    offset = p.offset ?? 0;
  } else {
    const { rows, cols, ...start } = p;
    proc = await procs.start({ ...start, open_stdin: true }, ctx, { rows: rows ?? 24, cols: cols ?? 80 });
    if (ctx.signal.aborted) {
      // Gone before the 101 named the process: nobody could ever reach it.
      proc.exec?.abort();
      throw cancelled();
    }
  }
  const sock = up.open({ [HEADER_PROC_ID]: proc.id });
  await pumpPty(proc, sock, offset, ctx.signal);
}
