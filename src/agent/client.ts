import type { Duplex, Readable } from 'node:stream';
import { badRequest, cancelled, operationFailed, type AppError } from '../errors.js';
import { agentError, AgentConnection, formatMs, type SessionHandler } from './connection.js';
import { DEFAULT_LIVENESS, watchLiveness, type Liveness } from './liveness.js';
import { startExec, type AgentExec, type ExecOptions } from './exec.js';
import {
  decodeAgentHello,
  decodeEmpty,
  decodeFileInfo,
  decodeFileListReply,
  decodeHealthReply,
  decodePortsReply,
  encodeFileGet,
  encodeFileList,
  encodeFilePut,
  encodeHostHello,
  encodeIdentity,
  encodeShutdown,
  encodeU32,
  type AgentHealth,
  type AgentHello,
  type FileInfo,
  type FileListReply,
  type Identity,
  type ListeningPort,
  type ShutdownAction,
} from './payloads.js';
import { DATA_CHUNK, FrameType, PROTOCOL_VERSION, frameTypeName, type Frame } from './protocol.js';

export interface AgentClientOptions {
  /** How long to wait for each answer (default 10 s). */
  timeoutMs?: number;
  /** Names the agent in messages (default "the guest agent"). */
  label?: string;
  /** Liveness checks while sessions wait (liveness.ts; default DEFAULT_LIVENESS); false: none. */
  liveness?: Liveness | false;
}

export interface PutFileOptions {
  /** Permission bits (default 0644). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Required when data is a stream: exactly this many bytes are sent. */
  size?: number;
}

export interface GetFileOptions {
  /** Refuse files larger than this (default 64 MiB). */
  maxBytes?: number;
}

/** A parser for a session answered by exactly one frame of this type. */
function reply<T>(type: number, decode: (p: Buffer) => T): (f: Frame) => T {
  return (f) => {
    if (f.type !== type) throw operationFailed(`frame type ${frameTypeName(f.type)} instead of ${frameTypeName(type)}`);
    return decode(f.payload);
  };
}

const decodeOk = (p: Buffer): true => {
  decodeEmpty(p, 'OK');
  return true;
};

/** What a request's parser returns to keep waiting for more frames. */
const MORE = Symbol('more');

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_GET = 64 << 20;
const MIN_AGENT_PAYLOAD = 65536;

/**
 * The host side of the guest agent protocol (docs/agent-protocol.md) over any
 * byte stream: a virtio-serial chardev socket, a Firecracker vsock connection
 * (see vsock.ts), or a socketpair in tests. Many operations run at once, each
 * in its own session; every wait is bounded and says what it waited for.
 */
export class AgentClient {
  private constructor(
    private readonly conn: AgentConnection,
    readonly agent: AgentHello,
    private readonly timeoutMs: number,
    liveness: Liveness | false,
  ) {
    if (liveness) watchLiveness(conn, liveness, (ms) => this.health(ms));
  }

  /** Performs the version handshake; the stream then belongs to the client. */
  static connect(stream: Duplex, opts: AgentClientOptions = {}): Promise<AgentClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const conn = new AgentConnection(stream, opts.label ?? 'the guest agent');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.destroy(`${conn.label} did not answer hello within ${formatMs(timeoutMs)}`);
      }, timeoutMs);
      void conn.closed.then((err) => {
        clearTimeout(timer);
        reject(err);
      });
      conn.onHello((f) => {
        clearTimeout(timer);
        conn.onHello(undefined);
        let hello: AgentHello;
        try {
          hello = decodeAgentHello(f.payload);
        } catch (e) {
          conn.destroy(`${conn.label} sent a malformed HELLO: ${(e as Error).message}`);
          return;
        }
        if (hello.version !== PROTOCOL_VERSION || hello.maxPayload < MIN_AGENT_PAYLOAD) {
          conn.destroy(
            `${conn.label} (${hello.name}) answered protocol version ${hello.version} with frames up to ${hello.maxPayload} bytes; banger speaks version ${PROTOCOL_VERSION}`,
          );
          return;
        }
        resolve(new AgentClient(conn, hello, timeoutMs, opts.liveness ?? DEFAULT_LIVENESS));
      });
      conn.post(FrameType.HELLO, 0, encodeHostHello({ minVersion: PROTOCOL_VERSION, maxVersion: PROTOCOL_VERSION }));
    });
  }

  /** Resolves with the reason once the connection is gone. */
  get closed(): Promise<AppError> {
    return this.conn.closed;
  }

  get isOpen(): boolean {
    return this.conn.isOpen;
  }

  close(): void {
    this.conn.destroy();
  }

  health(timeoutMs = this.timeoutMs): Promise<AgentHealth> {
    return this.request(
      'health',
      FrameType.HEALTH,
      undefined,
      reply(FrameType.HEALTH_REPLY, decodeHealthReply),
      false,
      undefined,
      timeoutMs,
    );
  }

  /** Listening TCP and bound UDP sockets in the guest. */
  async ports(): Promise<{ ports: ListeningPort[]; truncated: boolean }> {
    return this.request('ports', FrameType.PORTS, undefined, reply(FrameType.PORTS_REPLY, decodePortsReply));
  }

  /** sync + poweroff (or reboot) in the guest; resolves when the agent confirms, before the VM is gone. */
  async shutdown(action: ShutdownAction = 'poweroff'): Promise<void> {
    await this.request('shutdown', FrameType.SHUTDOWN, encodeShutdown(action), reply(FrameType.OK, decodeOk));
  }

  async setIdentity(identity: Identity): Promise<void> {
    const payload = encodeIdentity(identity);
    await this.request('set identity', FrameType.SET_IDENTITY, payload, reply(FrameType.OK, decodeOk));
  }

  exec(opts: ExecOptions): AgentExec {
    return startExec(this.conn, opts, this.timeoutMs);
  }

  /** Writes a guest file atomically (temporary file + rename) with the given mode and owner. */
  putFile(path: string, data: Buffer | Readable, opts: PutFileOptions = {}): Promise<void> {
    const size = Buffer.isBuffer(data) ? data.length : opts.size;
    if (size === undefined) throw badRequest(`putFile ${path}: give the size of a stream`);
    if (Buffer.isBuffer(data) && opts.size !== undefined && opts.size !== data.length) {
      throw badRequest(`putFile ${path}: size ${opts.size} does not match the ${data.length} bytes given`);
    }
    const header = encodeFilePut({ mode: opts.mode ?? 0o644, uid: opts.uid, gid: opts.gid, size, path });
    const what = `put ${path}`;
    return new Promise<void>((resolve, reject) => {
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (err?: AppError): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.conn.close(id);
        if (err) reject(err);
        else resolve();
      };
      const abort = (err: AppError): void => {
        if (finished) return;
        settle(err); // first: the agent's answer to ABORT may come back before post() returns
        this.conn.post(FrameType.ABORT, id);
      };
      // The agent answers only at the end: the timer runs while nothing moves.
      const arm = (): void => {
        clearTimeout(timer);
        if (!finished) timer = setTimeout(() => abort(this.timeoutError(what)), this.timeoutMs);
      };
      const id = this.conn.open({
        what,
        onFrame: (f) => {
          // Decoded before settling: a malformed answer fails the connection, which settles this call.
          if (f.type === FrameType.ERROR) return settle(agentError(what, f.payload));
          reply(FrameType.OK, decodeOk)(f);
          settle();
        },
        onClose: (err) => settle(err),
      });
      const send = async (): Promise<void> => {
        arm();
        await this.conn.send(FrameType.FILE_PUT, id, header);
        let sent = 0;
        const chunks: AsyncIterable<Buffer> | Buffer[] = Buffer.isBuffer(data)
          ? [data]
          : (data as AsyncIterable<Buffer>);
        for await (const raw of chunks) {
          if (finished) return;
          const chunk = Buffer.from(raw);
          if (sent + chunk.length > size)
            return abort(badRequest(`${what}: the source has more than the ${size} bytes announced`));
          for (let off = 0; off < chunk.length && !finished; off += DATA_CHUNK) {
            await this.conn.send(FrameType.FILE_DATA, id, chunk.subarray(off, off + DATA_CHUNK));
            arm();
          }
          sent += chunk.length;
        }
        if (finished) return;
        if (sent !== size)
          return abort(badRequest(`${what}: the source ended after ${sent} of the ${size} bytes announced`));
        await this.conn.send(FrameType.FILE_DATA, id);
        arm();
      };
      send().catch((e: AppError) => abort(e));
    });
  }

  /** A guest directory's entries (lstat: links are not followed), at most maxEntries of them, in the agent's order. */
  listDir(path: string, maxEntries: number): Promise<FileListReply> {
    return this.request(
      `list ${path}`,
      FrameType.FILE_LIST,
      encodeFileList(path, maxEntries),
      reply(FrameType.FILE_LIST_REPLY, (p) => decodeFileListReply(p, maxEntries)),
    );
  }

  /** Reads a regular guest file into memory, refusing more than maxBytes. */
  async getFile(path: string, opts: GetFileOptions = {}): Promise<{ data: Buffer; info: FileInfo }> {
    const parts: Buffer[] = [];
    const info = await this.streamFile(path, async (chunk) => void parts.push(chunk), opts);
    return { data: Buffer.concat(parts), info };
  }

  /**
   * Streams a regular guest file: `onData` gets each chunk in order, and the
   * agent's credit for it is returned only once its promise resolved (so a
   * slow consumer slows the guest, nothing piles up). Refuses more than maxBytes.
   */
  async streamFile(
    path: string,
    onData: (chunk: Buffer) => Promise<void>,
    opts: GetFileOptions & { signal?: AbortSignal } = {},
  ): Promise<FileInfo> {
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_GET;
    const what = `get ${path}`;
    // A consumer that fails ends the session (its credit would never come back).
    const stop = new AbortController();
    const onCaller = (): void => stop.abort();
    opts.signal?.addEventListener('abort', onCaller, { once: true });
    if (opts.signal?.aborted) stop.abort();
    let failure: unknown;
    let info: FileInfo | undefined;
    let got = 0;
    let written = Promise.resolve();
    try {
      return await this.request(
        what,
        FrameType.FILE_GET,
        encodeFileGet(path),
        (f, id) => {
          if (f.type === FrameType.FILE_INFO && !info) {
            info = decodeFileInfo(f.payload);
            if (info.size > maxBytes)
              throw badRequest(`guest file ${path} is ${info.size} bytes, more than the ${maxBytes} allowed`);
            return MORE;
          }
          if (f.type !== FrameType.FILE_DATA || !info)
            throw operationFailed(`frame type ${frameTypeName(f.type)} on a get session`);
          if (f.payload.length === 0) {
            if (got !== info.size)
              throw operationFailed(`guest file ${path} changed while it was read (${got} of ${info.size} bytes)`);
            const done = info;
            return written.then(() => done);
          }
          got += f.payload.length;
          if (got > info.size)
            throw operationFailed(`guest file ${path} sent more than the ${info.size} bytes it announced`);
          const chunk = Buffer.from(f.payload);
          written = written.then(async () => {
            try {
              await onData(chunk);
            } catch (e) {
              failure ??= e;
              stop.abort();
              throw e;
            }
            this.conn.post(FrameType.WINDOW, id, encodeU32(chunk.length));
          });
          written.catch(() => undefined);
          return MORE;
        },
        true,
        stop.signal,
      );
    } catch (e) {
      throw failure ?? e;
    } finally {
      opts.signal?.removeEventListener('abort', onCaller);
    }
  }

  /**
   * What a guest path is, asked with a FILE_GET that is aborted at once:
   * 'file' (a regular file), 'missing', or 'other' (a directory or a special file).
   */
  async pathKind(path: string): Promise<'file' | 'missing' | 'other'> {
    const IS_FILE = 'a regular file';
    try {
      await this.request(`stat ${path}`, FrameType.FILE_GET, encodeFileGet(path), (f) => {
        if (f.type === FrameType.FILE_INFO) throw badRequest(IS_FILE); // ends the session with ABORT
        throw operationFailed(`frame type ${frameTypeName(f.type)} on a get session`);
      });
    } catch (e) {
      const err = e as AppError;
      if (err.code === 'bad_request' && err.message === IS_FILE) return 'file';
      if (/\(errno 2\)/.test(err.detail ?? '')) return 'missing';
      if (/agent error bad_request/.test(err.detail ?? '') && /is not a regular file/.test(err.message)) return 'other';
      throw e;
    }
    throw operationFailed(`stat ${path}: the agent answered FILE_GET without FILE_INFO`);
  }

  /**
   * One session that ends with a reply: parse returns the result, MORE to
   * keep waiting, or throws — a badRequest (one of our limits) aborts the
   * session, anything else (a malformed answer) fails the connection. With
   * `progress`, each frame restarts the timer.
   */
  private request<T>(
    what: string,
    type: number,
    payload: Buffer | undefined,
    parse: (f: Frame, id: number) => T | Promise<T> | typeof MORE,
    progress = false,
    signal?: AbortSignal,
    timeoutMs = this.timeoutMs,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let id = 0;
      const onAbort = (): void => {
        end();
        this.conn.post(FrameType.ABORT, id);
        reject(cancelled());
      };
      const end = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.conn.close(id);
      };
      const arm = (): void => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          end();
          this.conn.post(FrameType.ABORT, id);
          reject(this.timeoutError(what, timeoutMs));
        }, timeoutMs);
      };
      const handler: SessionHandler = {
        what,
        onFrame: (f) => {
          if (f.type === FrameType.ERROR) {
            // Decode first: a malformed ERROR must fail the connection with this session still in it.
            const err = agentError(what, f.payload);
            end();
            reject(err);
            return;
          }
          let result: T | Promise<T> | typeof MORE;
          try {
            result = parse(f, id);
          } catch (e) {
            if ((e as AppError).code === 'bad_request') {
              // Our limit, not a broken agent: stop the session, keep the connection.
              end();
              this.conn.post(FrameType.ABORT, id);
              reject(e as AppError);
              return;
            }
            throw e;
          }
          if (result === MORE) {
            if (progress) arm();
            return;
          }
          end();
          // A promise (the consumer still writing) settles the call when it does.
          Promise.resolve(result).then(resolve, reject);
        },
        onClose: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      try {
        id = this.conn.open(handler);
      } catch (e) {
        reject(e as AppError);
        return;
      }
      arm();
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.conn.post(type, id, payload);
    });
  }

  private timeoutError(what: string, ms = this.timeoutMs): AppError {
    return operationFailed(`${this.conn.label} did not answer ${what} within ${formatMs(ms)}`, {
      hint: 'check that the guest is running (banger vm logs shows its console)',
    });
  }
}
