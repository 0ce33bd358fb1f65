import { call } from './call.js';
import { BangerError, BangerTimeoutError, ExecError } from './errors.js';
import { ProcessHandle } from './process.js';
import { PtySession } from './pty.js';
import { defaultTransport, type Transport } from './transport.js';
import type {
  AttachOptions,
  CreateOptions,
  ExecOptions,
  ExecResult,
  FileListResult,
  FileReadResult,
  ListeningPort,
  ProcessInfo,
  PtyOptions,
  SpawnOptions,
  VmInfo,
  WorkspaceExport,
  WorkspaceExportOptions,
  WorkspaceInfo,
  WorkspaceOptions,
} from './types.js';

export { BangerError, BangerTimeoutError, ExecError, type TimeoutKind } from './errors.js';
export { ProcessHandle } from './process.js';
export { PtySession, type PtyStatus } from './pty.js';
export type { Transport, CallOptions } from './transport.js';
export type * from './types.js';
export type * from './generated/contract.js';

/*
 * @banger/sdk: banger's sandboxes from code.
 *
 *   const banger = await Banger.connect();
 *   const vm = await banger.vms.create({ image: 'debian-bookworm', ttl: 3600_000 });
 *   const r = await vm.exec(['npm', 'test'], { cwd: '/work', timeout: 600_000 });
 *   if (r.exitCode !== 0) console.log(r.stderr);
 *   await vm.delete();
 *
 * exec never throws for a non-zero exit unless asked (`check: true`); every call takes an AbortSignal;
 * each named timeout (ttl, idleTtl, timeout, requestTimeout) throws BangerTimeoutError saying which.
 */

export interface ConnectOptions {
  /** Bound of every request to the daemon (ms); its expiry throws BangerTimeoutError('requestTimeout'). */
  requestTimeout?: number;
  /** Another way to the daemon (tests; the HTTP API). */
  transport?: Transport;
  /** Environment for finding the daemon (BANGER_* paths), as the CLI reads it. */
  env?: NodeJS.ProcessEnv;
}

type Signal = { signal?: AbortSignal };

const b64 = (d: string | Uint8Array): string => Buffer.from(d).toString('base64');

export class Banger {
  readonly vms: Vms;
  readonly processes: Processes;

  private constructor(
    readonly transport: Transport,
    readonly requestTimeout: number | undefined,
  ) {
    this.vms = new Vms(this);
    this.processes = new Processes(this);
  }

  /** Finds the daemon and starts it when none runs, as the `banger` CLI does. */
  static async connect(opts: ConnectOptions = {}): Promise<Banger> {
    const t = opts.transport ?? (await defaultTransport(opts.env));
    const b = new Banger(t, opts.requestTimeout);
    await b.call('daemon.status', {}, {});
    return b;
  }

  /** @internal */
  call(method: string, params: unknown, opts: Signal): Promise<unknown> {
    return call(this.transport, method, params, { signal: opts.signal, requestTimeout: this.requestTimeout });
  }
}

export class Vms {
  constructor(private readonly b: Banger) {}

  /** Creates and boots a VM. With idempotencyKey, a retry (within 24 h) returns the VM the first call made. */
  async create(opts: CreateOptions = {}): Promise<Vm> {
    const p: Record<string, unknown> = { start: true };
    if (opts.name !== undefined) p.name = opts.name;
    if (opts.image !== undefined) p.image = opts.image;
    if (opts.vcpu !== undefined) p.vcpu = opts.vcpu;
    if (opts.memory !== undefined) p.memory = opts.memory;
    if (opts.diskSize !== undefined) p.disk_size = opts.diskSize;
    if (opts.nat !== undefined) p.nat = opts.nat;
    if (opts.publish !== undefined) p.publish = opts.publish;
    if (opts.ttl !== undefined) p.ttl_ms = opts.ttl;
    if (opts.idleTtl !== undefined) p.idle_ttl_ms = opts.idleTtl;
    if (opts.rm !== undefined) p.rm = opts.rm;
    if (opts.idempotencyKey !== undefined) p.idempotency_key = opts.idempotencyKey;
    const vm = new Vm(this.b, (await this.b.call('vm.create', p, opts)) as VmInfo);
    if (opts.workspace === undefined) return vm;
    try {
      await vm.workspace.prepare(opts.workspace, { ...opts.workspaceOptions, signal: opts.signal });
    } catch (e) {
      // A VM whose workspace did not ship is not what was asked for (as `banger vm run PATH`).
      await vm.delete().catch(() => undefined);
      throw e;
    }
    await vm.refresh();
    return vm;
  }

  async get(ref: string, opts: Signal = {}): Promise<Vm> {
    return new Vm(this.b, (await this.b.call('vm.show', { ref }, opts)) as VmInfo);
  }

  async list(opts: Signal = {}): Promise<Vm[]> {
    return ((await this.b.call('vm.list', {}, opts)) as VmInfo[]).map((v) => new Vm(this.b, v));
  }

  async delete(ref: string, opts: Signal = {}): Promise<void> {
    await this.b.call('vm.delete', { ref }, opts);
  }
}

export class Processes {
  constructor(private readonly b: Banger) {}

  /** A handle on a daemon-side process, reading both streams from `fromOffset` (0: all that is kept). */
  async attach(id: string, opts: AttachOptions = {}): Promise<ProcessHandle> {
    const info = (await this.b.call('proc.show', { id }, opts)) as ProcessInfo;
    return new ProcessHandle(this.b.transport, id, info.argv, {
      fromOffset: opts.fromOffset ?? 0,
      requestTimeout: this.b.requestTimeout,
    });
  }

  /** The terminal of a process started by `vm.pty`, its output from `fromOffset` (0: all that is kept). */
  async attachPty(id: string, opts: AttachOptions = {}): Promise<PtySession> {
    return PtySession.open(
      this.b.transport,
      { id, offset: opts.fromOffset ?? 0 },
      { signal: opts.signal, requestTimeout: this.b.requestTimeout },
    );
  }

  async list(vm?: string, opts: Signal = {}): Promise<ProcessInfo[]> {
    return (await this.b.call('proc.list', vm === undefined ? {} : { ref: vm }, opts)) as ProcessInfo[];
  }
}

export class Vm {
  readonly files: VmFiles;
  readonly workspace: VmWorkspace;

  constructor(
    private readonly b: Banger,
    /** What the daemon said at the last create/get/refresh. */
    public info: VmInfo,
  ) {
    this.files = new VmFiles(b, info.id);
    this.workspace = new VmWorkspace(b, info.id);
  }

  get id(): string {
    return this.info.id;
  }

  get name(): string {
    return this.info.name;
  }

  async refresh(opts: Signal = {}): Promise<VmInfo> {
    this.info = (await this.b.call('vm.show', { ref: this.id }, opts)) as VmInfo;
    return this.info;
  }

  /**
   * Starts a command; the handle streams its output. Aborting `signal` kills the command's process
   * group unless the handle was detached.
   */
  async spawn(argv: readonly string[], opts: SpawnOptions = {}): Promise<ProcessHandle> {
    const p: Record<string, unknown> = { ref: this.id, argv };
    if (opts.cwd !== undefined) p.cwd = opts.cwd;
    if (opts.env !== undefined) p.env = opts.env;
    if (opts.user !== undefined) p.user = opts.user;
    if (opts.timeout !== undefined) p.timeout_ms = opts.timeout;
    if (opts.stdin !== undefined) p.stdin = b64(opts.stdin);
    else p.open_stdin = true;
    const info = (await this.b.call('proc.start', p, opts)) as ProcessInfo;
    return new ProcessHandle(this.b.transport, info.id, argv, {
      fromOffset: 0,
      signal: opts.signal,
      requestTimeout: this.b.requestTimeout,
    });
  }

  /**
   * Starts a command on a terminal (`cols`×`rows`, default 80×24): `stream` carries raw bytes both
   * ways; `resize()`, `wait()`. Closing the stream detaches (the command runs on).
   */
  async pty(argv: readonly string[], opts: PtyOptions = {}): Promise<PtySession> {
    const p: Record<string, unknown> = { ref: this.id, argv };
    if (opts.cwd !== undefined) p.cwd = opts.cwd;
    if (opts.env !== undefined) p.env = opts.env;
    if (opts.user !== undefined) p.user = opts.user;
    if (opts.timeout !== undefined) p.timeout_ms = opts.timeout;
    if (opts.cols !== undefined) p.cols = opts.cols;
    if (opts.rows !== undefined) p.rows = opts.rows;
    return PtySession.open(this.b.transport, p, { signal: opts.signal, requestTimeout: this.b.requestTimeout });
  }

  /**
   * Runs a command to its end: {exitCode, signal, timedOut, stdout, stderr}. A non-zero exit is a
   * result, not an error, unless `check: true` (then ExecError, or BangerTimeoutError('timeout')).
   */
  async exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const { check, stdin, ...rest } = opts;
    const h = await this.spawn(argv, { ...rest, stdin: stdin ?? '' });
    const r = await h.wait(opts.signal ? { signal: opts.signal } : {});
    if (check && r.timedOut)
      throw new BangerTimeoutError('timeout', `${argv.join(' ')} ran past ${opts.timeout} ms`, r.stdout, r.stderr);
    if (check && r.exitCode !== 0) throw new ExecError(argv, r.exitCode, r.signal, r.stdout, r.stderr);
    return r;
  }

  /** A shell script (`/bin/sh -c`), as exec. */
  sh(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(['/bin/sh', '-c', script], opts);
  }

  /** The guest's listening ports, with where the host reaches them. */
  async ports(opts: Signal = {}): Promise<ListeningPort[]> {
    return ((await this.b.call('vm.ports', { ref: this.id }, opts)) as { ports: ListeningPort[] }).ports;
  }

  async stop(opts: Signal = {}): Promise<void> {
    this.info = (await this.b.call('vm.stop', { ref: this.id }, opts)) as VmInfo;
  }

  async start(opts: Signal = {}): Promise<void> {
    this.info = (await this.b.call('vm.start', { ref: this.id }, opts)) as VmInfo;
  }

  async delete(opts: Signal = {}): Promise<void> {
    await this.b.call('vm.delete', { ref: this.id }, opts);
  }
}

export class VmFiles {
  constructor(
    private readonly b: Banger,
    private readonly ref: string,
  ) {}

  /** A whole guest file (up to 16 MiB). */
  async read(path: string, opts: Signal = {}): Promise<FileReadResult> {
    const r = (await this.b.call('fs.read', { ref: this.ref, path }, opts)) as { data: string; mode: number };
    return { data: Buffer.from(r.data, 'base64'), mode: r.mode };
  }

  /**
   * A guest directory's entries, sorted by name; links are reported, never followed. At most
   * `maxEntries` (default 1000, up to 10000): `truncated` says when there were more. A missing path
   * throws BangerError code not_found; a path that is not a directory, bad_request.
   */
  async list(path: string, opts: Signal & { maxEntries?: number } = {}): Promise<FileListResult> {
    const p: Record<string, unknown> = { ref: this.ref, path };
    if (opts.maxEntries !== undefined) p.max_entries = opts.maxEntries;
    return (await this.b.call('fs.list', p, opts)) as FileListResult;
  }

  /** Writes a whole guest file (root-owned, `mode` default 0644; up to 512 KiB per call). */
  async write(path: string, data: string | Uint8Array, opts: Signal & { mode?: number } = {}): Promise<void> {
    await this.b.call(
      'fs.write',
      { ref: this.ref, path, data: b64(data), ...(opts.mode === undefined ? {} : { mode: opts.mode }) },
      opts,
    );
  }
}

export class VmWorkspace {
  constructor(
    private readonly b: Banger,
    private readonly ref: string,
  ) {}

  /** Ships a host git checkout to /root/repo, as `banger vm workspace prepare VM PATH`. */
  async prepare(path: string, opts: WorkspaceOptions = {}): Promise<WorkspaceInfo> {
    const t = this.b.transport;
    if (!t.workspacePrepare)
      throw new BangerError('bad_request', 'this transport cannot ship workspaces', 'use the default transport');
    return (await t.workspacePrepare(this.ref, path, { ...opts })) as WorkspaceInfo;
  }

  /** The guest workspace's changes as a patch, as `banger vm workspace export VM`. */
  async export(opts: WorkspaceExportOptions = {}): Promise<WorkspaceExport> {
    const t = this.b.transport;
    if (!t.workspaceExport)
      throw new BangerError('bad_request', 'this transport cannot export workspaces', 'use the default transport');
    const { signal: _signal, ...rest } = opts;
    return (await t.workspaceExport(this.ref, rest)) as WorkspaceExport;
  }
}
