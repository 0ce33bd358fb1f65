import type { Duplex } from 'node:stream';
import { encodeFrame, FrameDecoder } from '../../src/agent/codec.js';
import {
  decodeExec,
  decodeFileGet,
  decodeFileList,
  encodeFileListReply,
  type DirEntry,
  decodeFilePut,
  decodeHostHello,
  decodeIdentity,
  decodeResize,
  decodeShutdown,
  decodeU32,
  encodeAgentHello,
  encodeError,
  encodeExit,
  encodeFileInfo,
  encodeHealthReply,
  encodePortsReply,
  encodeU32,
  type ExecRequest,
  type ExitStatus,
  type Identity,
  type ListeningPort,
  type ShutdownAction,
} from '../../src/agent/payloads.js';
import {
  AgentErrorCode,
  DATA_CHUNK,
  FrameType,
  MAX_PAYLOAD,
  PROTOCOL_VERSION,
  WINDOW_INITIAL,
  type Frame,
} from '../../src/agent/protocol.js';

/** What a fake command can do; output waits for the host's flow-control credit like the real agent's. */
export interface FakeExecIO {
  readonly request: ExecRequest;
  stdout(data: string | Buffer): void;
  stderr(data: string | Buffer): void;
  /** Sent once all queued output went out. */
  exit(status: ExitStatus): void;
  onStdin(cb: (data: Buffer | null) => void): void;
  onSignal(cb: (signal: number) => void): void;
  onResize(cb: (rows: number, cols: number) => void): void;
  onAbort(cb: () => void): void;
  /** Output bytes queued because the host has not given credit for them. */
  readonly queued: number;
}

export type FakeCommand = (io: FakeExecIO) => void;

export type FakeOp = 'hello' | 'health' | 'exec' | 'ports' | 'put' | 'get' | 'list' | 'shutdown' | 'identity';

export interface FakeAgentOptions {
  name?: string;
  /** The version the fake answers in HELLO. */
  version?: number;
  /** Operations the fake never answers (timeouts). */
  silent?: readonly FakeOp[];
  /** Runs for each EXEC; returning a string refuses the start with that message. */
  command?: (io: FakeExecIO) => string | void;
  files?: Map<string, { data: Buffer; mode: number }>;
  /** Guest directories: a get of one is refused as the agent does ("… is not a regular file"). */
  dirs?: readonly string[];
  ports?: ListeningPort[];
  /** Called when a SHUTDOWN arrived (after its OK, when answered). */
  onShutdown?: (action: ShutdownAction) => void;
}

interface FakeExecSession {
  kind: 'exec';
  io: FakeExecIO;
  credit: number;
  queue: { type: number; data: Buffer }[];
  exit?: ExitStatus;
  stdinHeld: number;
  stdinCb?: (data: Buffer | null) => void;
  signalCb?: (signal: number) => void;
  resizeCb?: (rows: number, cols: number) => void;
  abortCb?: () => void;
}

interface FakePutSession {
  kind: 'put';
  path: string;
  mode: number;
  size: number;
  parts: Buffer[];
  got: number;
}

/**
 * An in-process agent speaking the protocol over a stream, for unit tests of
 * AgentClient. It enforces what the real one does (handshake first, session
 * ids, flow-control windows) and records what it saw; `violations` lists
 * anything the host did wrong.
 */
export class FakeAgent {
  readonly received: Frame[] = [];
  readonly violations: string[] = [];
  readonly identities: Identity[] = [];
  readonly shutdowns: ShutdownAction[] = [];
  readonly files: Map<string, { data: Buffer; mode: number }>;
  private readonly decoder = new FrameDecoder();
  private readonly sessions = new Map<number, FakeExecSession | FakePutSession>();
  private readonly gets = new Map<number, { data: Buffer; sent: number; credit: number }>();
  private hello = false;
  /** After restart(): input is discarded until a host HELLO (the virtio-serial agent after a respawn). */
  private discarding = false;

  constructor(
    private readonly stream: Duplex,
    private readonly opts: FakeAgentOptions = {},
  ) {
    this.files = opts.files ?? new Map();
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', () => undefined);
  }

  /** Bytes straight onto the stream (malformed-frame tests). */
  sendRaw(buf: Buffer): void {
    this.stream.write(buf);
  }

  send(type: number, session: number, payload?: Buffer): void {
    if (!this.stream.destroyed) this.stream.write(encodeFrame(type, session, payload));
  }

  /**
   * What a virtio-serial agent that died and was respawned looks like to the host: the
   * stream stays open, the new agent knows no sessions and discards input until a HELLO.
   */
  restart(): void {
    this.sessions.clear();
    this.gets.clear();
    this.hello = false;
    this.discarding = true;
  }

  /** Open exec sessions, by id. */
  execSessions(): FakeExecIO[] {
    return [...this.sessions.values()].flatMap((s) => (s.kind === 'exec' ? [s.io] : []));
  }

  private silent(op: FakeOp): boolean {
    return this.opts.silent?.includes(op) ?? false;
  }

  private error(session: number, code: keyof typeof AgentErrorCode, message: string, errno = 0): void {
    this.send(FrameType.ERROR, session, encodeError({ code: AgentErrorCode[code], errno, message }));
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.violations.push((e as Error).message);
      this.error(0, 'protocol', (e as Error).message);
      this.stream.end();
      return;
    }
    for (const f of frames) {
      this.received.push(f);
      if (this.discarding) {
        if (f.type !== FrameType.HELLO || f.session !== 0) continue;
        this.discarding = false;
      }
      try {
        this.handle(f);
      } catch (e) {
        this.violations.push(`${(e as Error).message}`);
        this.error(f.session, 'bad_request', (e as Error).message);
      }
    }
  }

  private handle(f: Frame): void {
    if (!this.hello) {
      if (f.type !== FrameType.HELLO || f.session !== 0) throw new Error('the first frame must be HELLO');
      decodeHostHello(f.payload);
      if (this.silent('hello')) return;
      this.hello = true;
      const hello = {
        version: this.opts.version ?? PROTOCOL_VERSION,
        maxPayload: MAX_PAYLOAD,
        name: this.opts.name ?? 'fake-agent',
      };
      this.send(FrameType.HELLO, 0, encodeAgentHello(hello));
      return;
    }
    const s = this.sessions.get(f.session);
    switch (f.type) {
      case FrameType.HEALTH:
        if (!this.silent('health')) {
          this.send(
            FrameType.HEALTH_REPLY,
            f.session,
            encodeHealthReply({ uptimeMs: 1234, sessions: this.sessions.size, name: 'fake-agent' }),
          );
        }
        return;
      case FrameType.PORTS:
        if (!this.silent('ports'))
          this.send(
            FrameType.PORTS_REPLY,
            f.session,
            encodePortsReply({ truncated: false, ports: this.opts.ports ?? [] }),
          );
        return;
      case FrameType.SHUTDOWN:
        this.shutdowns.push(decodeShutdown(f.payload));
        if (!this.silent('shutdown')) this.send(FrameType.OK, f.session);
        this.opts.onShutdown?.(this.shutdowns.at(-1) as ShutdownAction);
        return;
      case FrameType.SET_IDENTITY:
        this.identities.push(decodeIdentity(f.payload));
        if (!this.silent('identity')) this.send(FrameType.OK, f.session);
        return;
      case FrameType.EXEC:
        return this.exec(f);
      case FrameType.FILE_PUT: {
        const h = decodeFilePut(f.payload);
        if (this.silent('put')) return;
        this.sessions.set(f.session, { kind: 'put', path: h.path, mode: h.mode, size: h.size, parts: [], got: 0 });
        return;
      }
      case FrameType.FILE_GET: {
        const path = decodeFileGet(f.payload);
        if (this.silent('get')) return;
        if (this.opts.dirs?.includes(path))
          return this.error(f.session, 'bad_request', `${path} is not a regular file`);
        const file = this.files.get(path);
        if (!file) return this.error(f.session, 'system', `open ${path}: No such file or directory`, 2);
        this.send(
          FrameType.FILE_INFO,
          f.session,
          encodeFileInfo({ mode: file.mode, uid: 0, gid: 0, size: file.data.length, mtimeS: 1 }),
        );
        this.gets.set(f.session, { data: file.data, sent: 0, credit: WINDOW_INITIAL });
        this.pumpGet(f.session);
        return;
      }
      case FrameType.FILE_LIST: {
        const { path, maxEntries } = decodeFileList(f.payload);
        if (this.silent('list')) return;
        if (this.files.has(path)) return this.error(f.session, 'bad_request', `${path} is not a directory`, 20);
        const base = path.endsWith('/') ? path : `${path}/`;
        const child = (p: string): string | undefined =>
          p.startsWith(base) && !p.slice(base.length).includes('/') ? p.slice(base.length) : undefined;
        const entries: DirEntry[] = [];
        for (const [p, file] of this.files) {
          const name = child(p);
          if (name) entries.push({ name, kind: 'file', mode: file.mode, size: file.data.length, mtimeS: 1 });
        }
        for (const d of this.opts.dirs ?? []) {
          const name = child(d);
          if (name) entries.push({ name, kind: 'directory', mode: 0o755, size: 0, mtimeS: 1 });
        }
        if (!entries.length && !this.opts.dirs?.includes(path))
          return this.error(f.session, 'system', `lstat ${path}: No such file or directory`, 2);
        const reply = { truncated: entries.length > maxEntries, entries: entries.slice(0, maxEntries) };
        this.send(FrameType.FILE_LIST_REPLY, f.session, encodeFileListReply(reply));
        return;
      }
      case FrameType.FILE_DATA: {
        if (s?.kind !== 'put') return;
        if (f.payload.length === 0) {
          this.sessions.delete(f.session);
          if (s.got !== s.size)
            return this.error(f.session, 'bad_request', `got ${s.got} of the ${s.size} bytes announced for ${s.path}`);
          this.files.set(s.path, { data: Buffer.concat(s.parts), mode: s.mode });
          this.send(FrameType.OK, f.session);
          return;
        }
        s.got += f.payload.length;
        s.parts.push(Buffer.from(f.payload));
        if (s.got > s.size) throw new Error(`more bytes than announced for ${s.path}`);
        return;
      }
      case FrameType.WINDOW: {
        const inc = decodeU32(f.payload, 'WINDOW');
        const g = this.gets.get(f.session);
        if (g) {
          g.credit += inc;
          this.pumpGet(f.session);
        } else if (s?.kind === 'exec') {
          s.credit += inc;
          this.pump(f.session, s);
        }
        return;
      }
      case FrameType.STDIN:
        if (s?.kind !== 'exec') return;
        if (f.payload.length === 0) return s.stdinCb?.(null);
        s.stdinHeld += f.payload.length;
        if (s.stdinHeld > WINDOW_INITIAL) this.violations.push(`STDIN on session ${f.session} beyond the window`);
        s.stdinCb?.(Buffer.from(f.payload));
        s.stdinHeld -= f.payload.length;
        this.send(FrameType.WINDOW, f.session, encodeU32(f.payload.length));
        return;
      case FrameType.SIGNAL:
        if (s?.kind === 'exec') s.signalCb?.(decodeU32(f.payload, 'SIGNAL'));
        return;
      case FrameType.RESIZE:
        if (s?.kind === 'exec') {
          const r = decodeResize(f.payload);
          s.resizeCb?.(r.rows, r.cols);
        }
        return;
      case FrameType.ABORT:
        if (this.gets.delete(f.session) || s?.kind === 'put') {
          this.sessions.delete(f.session);
          this.error(f.session, 'aborted', 'aborted by the host');
        } else if (s?.kind === 'exec') {
          s.queue = [];
          s.abortCb?.();
          s.io.exit({ kind: 'signaled', signal: 9 });
        }
        return;
      default:
        this.violations.push(`unexpected frame type 0x${f.type.toString(16)}`);
    }
  }

  private exec(f: Frame): void {
    const request = decodeExec(f.payload);
    if (this.silent('exec')) return;
    const id = f.session;
    const session: FakeExecSession = {
      kind: 'exec',
      credit: WINDOW_INITIAL,
      queue: [],
      stdinHeld: 0,
      io: {
        request,
        stdout: (d) => queue(FrameType.STDOUT, d),
        stderr: (d) => queue(FrameType.STDERR, d),
        exit: (status) => {
          if (session.exit) return;
          session.exit = status;
          this.pump(id, session);
        },
        onStdin: (cb) => (session.stdinCb = cb),
        onSignal: (cb) => (session.signalCb = cb),
        onResize: (cb) => (session.resizeCb = cb),
        onAbort: (cb) => (session.abortCb = cb),
        get queued() {
          return session.queue.reduce((n, q) => n + q.data.length, 0);
        },
      },
    };
    const queue = (type: number, d: string | Buffer): void => {
      const data = Buffer.from(d);
      for (let off = 0; off < data.length; off += DATA_CHUNK)
        session.queue.push({ type, data: data.subarray(off, off + DATA_CHUNK) });
      this.pump(id, session);
    };
    const refused = this.opts.command?.(session.io);
    if (typeof refused === 'string') return this.error(id, 'system', refused, 2);
    this.sessions.set(id, session);
    this.send(FrameType.EXEC_STARTED, id, encodeU32(4242));
    this.pump(id, session);
  }

  private pump(id: number, s: FakeExecSession): void {
    if (!this.sessions.has(id)) return;
    while (s.queue.length) {
      const head = s.queue[0] as { type: number; data: Buffer };
      if (s.credit === 0) return;
      const n = Math.min(head.data.length, s.credit);
      this.send(head.type, id, head.data.subarray(0, n));
      s.credit -= n;
      if (n === head.data.length) s.queue.shift();
      else head.data = head.data.subarray(n);
    }
    if (s.exit) {
      this.sessions.delete(id);
      this.send(FrameType.EXIT, id, encodeExit(s.exit));
    }
  }

  private pumpGet(id: number): void {
    const g = this.gets.get(id);
    if (!g) return;
    while (g.sent < g.data.length && g.credit > 0) {
      const n = Math.min(DATA_CHUNK, g.credit, g.data.length - g.sent);
      this.send(FrameType.FILE_DATA, id, g.data.subarray(g.sent, g.sent + n));
      g.sent += n;
      g.credit -= n;
    }
    if (g.sent === g.data.length) {
      this.gets.delete(id);
      this.send(FrameType.FILE_DATA, id);
    }
  }
}
