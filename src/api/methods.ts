import { z } from 'zod';
import { parseSize } from '../config/sizes.js';
import { badRequest } from '../errors.js';
import { execFrame, execParams, type ExecOutFrame, type ExecResult } from './exec-contract.js';
import * as files from './file-contract.js';
import * as proc from './proc-contract.js';
export type * from './proc-contract.js';
export type { ExecInFrame, ExecOutFrame, ExecResult } from './exec-contract.js';
import type {
  VmView,
  ResolvedRef,
  VmSessionInfo,
  OperationView,
  DaemonStatus,
  VmLogs,
  VmStats,
  VmHealth,
  VmPorts,
  VmPublished,
  ImageView,
  KernelView,
  KernelCatalogView,
  KernelShowView,
  ImageShowView,
  ImageWarmResult,
  ImageRefreshResult,
  CachePruneResult,
  ExportResult,
  WorkspaceView,
  SnapshotView,
} from './views.js';
export type * from './views.js';

/*
 * The CLI↔daemon contract: every method with its params schema (strict:
 * unknown keys are rejected by name) and its result type. The daemon's
 * handlers (daemon/server.ts `Handlers`) and the CLI's `DaemonClient.call`
 * are typed from this table, so a handler or caller with the wrong params or
 * result does not compile (see contract.typecheck.ts).
 *
 * Params have two types: what a client sends (`WireParams`, the schema's
 * input) and what a handler receives (`Params`, its output). Sizes are parsed
 * here, once: `memory: "2G" | 2048` arrives as `memory_mib: 2048`.
 */

declare const carried: unique symbol;

/** A type carried at compile time only (a method's result, a stream's frames). */
export interface Carries<T> {
  readonly [carried]?: (t: T) => T;
}

/** Names a compile-time type in the table: `returns<VmView>()`. */
export const returns = <T>(): Carries<T> => ({});

/** A method answered with one `{result}` line, after any `{event}` lines. */
export interface UnaryMethod<S extends z.ZodType, R> {
  readonly kind: 'unary';
  readonly params: S;
  readonly result: Carries<R>;
}

/**
 * A method that keeps its connection open as a bidirectional stream after the
 * request line (protocol.ts `StreamFrame`): the client sends `In` frames, the
 * daemon sends `Out` frames, and the daemon ends it with one `{result}` or
 * `{error}` line (vm.exec: a command in the guest through its agent).
 */
export interface StreamMethod<S extends z.ZodType, R, In, Out> {
  readonly kind: 'stream';
  readonly params: S;
  readonly result: Carries<R>;
  readonly input: Carries<In>;
  readonly output: Carries<Out>;
}

/**
 * A method answered, once its checks passed, with `200` and a body of binary frames
 * (api/binframes.ts, content type application/vnd.banger.frames) instead of JSON lines: proc.stream.
 */
export interface FramedMethod<S extends z.ZodType> {
  readonly kind: 'framed';
  readonly params: S;
  readonly result: Carries<void>;
}

/**
 * A method whose success is `101 Switching Protocols` (Upgrade: banger-pty) after which the
 * connection carries raw terminal bytes both ways (proc.pty; its body is the params, as a unary's).
 */
export interface PtyMethod<S extends z.ZodType> {
  readonly kind: 'pty';
  readonly params: S;
  readonly result: Carries<void>;
}

/** What the server needs of any entry (its types are checked where each is declared). */
export interface AnyMethod {
  readonly kind: 'unary' | 'stream' | 'framed' | 'pty';
  readonly params: z.ZodType;
  /** Stream methods: the schema of each client frame (checked by the server before the handler sees it). */
  readonly frames?: z.ZodType;
}

const unary = <S extends z.ZodType, R>(params: S, _result: Carries<R>): UnaryMethod<S, R> => ({
  kind: 'unary',
  params,
  result: {},
});

/** A streaming method: `frames` checks each client frame at run time; `In` is what it parses to. */
const stream = <S extends z.ZodType, F extends z.ZodType, R, Out>(
  params: S,
  frames: F,
  _result: Carries<R>,
  _output: Carries<Out>,
): StreamMethod<S, R, z.output<F>, Out> & { readonly frames: F } => ({
  kind: 'stream',
  params,
  frames,
  result: {},
  input: {},
  output: {},
});

const framed = <S extends z.ZodType>(params: S): FramedMethod<S> => ({ kind: 'framed', params, result: {} });
const pty = <S extends z.ZodType>(params: S): PtyMethod<S> => ({ kind: 'pty', params, result: {} });

const MIB = 1048576;

/**
 * A size field: a number of MiB, or a string with a binary unit ("2G",
 * "512M"); in bytes. A value that is not a size is a bad_request naming the field.
 */
function sizeBytes(field: string, example: string, v: string | number): number {
  try {
    return parseSize(v, field);
  } catch {
    throw badRequest(
      `invalid ${field} ${JSON.stringify(v)}: not a size`,
      `give ${field} as a number of MiB or with a unit K, M, G or T (binary), e.g. ${example}`,
    );
  }
}

const size = z.union([z.string(), z.number()]);

/** The VM spec fields of vm.create and vm.set as sent, and as handlers get them. */
const vmSpec = {
  vcpu: z.number().optional(),
  memory: size.optional(),
  disk_size: size.optional(),
};

function parseVmSpec<T extends { memory?: string | number | undefined; disk_size?: string | number | undefined }>(
  p: T,
): Omit<T, 'memory' | 'disk_size'> & { memory_mib?: number; disk_bytes?: number } {
  const { memory, disk_size, ...rest } = p;
  return {
    ...rest,
    ...(memory === undefined ? {} : { memory_mib: Math.floor(sizeBytes('memory', '"2G" or 2048', memory) / MIB) }),
    ...(disk_size === undefined ? {} : { disk_bytes: sizeBytes('disk_size', '"8G"', disk_size) }),
  };
}

/** image.pull / image.build `size` → `size_bytes`. */
function parseImageSize<T extends { size?: string | number | undefined }>(
  p: T,
): Omit<T, 'size'> & { size_bytes?: number } {
  const { size: s, ...rest } = p;
  return { ...rest, ...(s === undefined ? {} : { size_bytes: sizeBytes('size', '"4G"', s) }) };
}

const vmRef = z.strictObject({ ref: z.string().min(1) });
/** vm.workspace_set: what the CLI shipped into the VM (it calls this after a successful ship). */
const workspaceSet = z.strictObject({
  ref: z.string().min(1),
  guest_path: z.string().startsWith('/').max(4096),
  host_path: z.string().startsWith('/').max(4096),
  head: z
    .string()
    .regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/)
    .nullable(),
});

const none = z.strictObject({});

export const methods = {
  'daemon.status': unary(none, returns<DaemonStatus>()),
  'daemon.stop': unary(none, returns<{ stopping: boolean }>()),
  'daemon.operations.list': unary(none, returns<OperationView[]>()),
  /** The TCP listener's bearer token (made on first use); `rotate` replaces it. */
  'daemon.api_token': unary(
    z.strictObject({ rotate: z.boolean().optional() }),
    returns<{ token: string; path: string }>(),
  ),
  'vm.create': unary(
    z
      .strictObject({
        name: z.string().optional(),
        image: z.string().optional(),
        ...vmSpec,
        nat: z.boolean().optional(),
        start: z.boolean().optional(),
        publish: z.array(z.string()).optional(),
        ...proc.lifetimeFields,
        cold: z.boolean().optional(),
        from_snapshot: z.string().min(1).optional(),
        /**
         * What the create waits for: sshd answering (default), or only the guest agent (a caller that
         * runs its commands through the agent; sshd finishes starting meanwhile). Without an agent: sshd.
         */
        ready: z.enum(['ssh', 'agent']).optional(),
      })
      .transform(parseVmSpec),
    returns<VmView>(),
  ),
  'vm.list': unary(none, returns<VmView[]>()),
  'vm.resolve': unary(z.strictObject({ refs: z.array(z.string()).min(1) }), returns<ResolvedRef[]>()),
  'vm.start': unary(vmRef, returns<VmView>()),
  'vm.stop': unary(vmRef, returns<VmView>()),
  'vm.restart': unary(vmRef, returns<VmView>()),
  'vm.pause': unary(vmRef, returns<VmView>()),
  'vm.resume': unary(vmRef, returns<VmView>()),
  'vm.snapshot_create': unary(
    z.strictObject({ ref: z.string().min(1), name: z.string().min(1) }),
    returns<SnapshotView>(),
  ),
  'vm.snapshot_list': unary(none, returns<SnapshotView[]>()),
  'vm.snapshot_rm': unary(z.strictObject({ name: z.string().min(1) }), returns<{ name: string }>()),
  'vm.fork': unary(z.strictObject({ ref: z.string().min(1), name: z.string().min(1) }), returns<VmView>()),
  'vm.kill': unary(
    z.strictObject({
      ref: z.string().min(1),
      signal: z
        .string()
        .regex(/^SIG[A-Z0-9]+$/)
        .optional(),
    }),
    returns<VmView>(),
  ),
  'vm.set': unary(z.strictObject({ ref: z.string().min(1), ...vmSpec }).transform(parseVmSpec), returns<VmView>()),
  'vm.prune': unary(none, returns<{ deleted: string[] }>()),
  'vm.show': unary(vmRef, returns<VmView>()),
  'vm.delete': unary(vmRef, returns<{ name: string }>()),
  'vm.ssh_info': unary(vmRef, returns<VmSessionInfo>()),
  'vm.workspace_set': unary(workspaceSet, returns<WorkspaceView>()),
  'vm.exec': stream(execParams, execFrame, returns<ExecResult>(), returns<ExecOutFrame>()),
  'vm.file_put': stream(files.putParams, files.putFrame, returns<files.FileResult>(), returns<never>()),
  'vm.file_get': stream(files.getParams, files.getFrame, returns<files.FileResult>(), returns<files.GetOutFrame>()),
  'vm.logs': unary(
    z.strictObject({ ref: z.string().min(1), tail_bytes: z.number().int().positive().optional() }),
    returns<VmLogs>(),
  ),
  'vm.stats': unary(vmRef, returns<VmStats>()),
  'vm.health': unary(vmRef, returns<VmHealth>()),
  'vm.ports': unary(vmRef, returns<VmPorts>()),
  'vm.publish': unary(
    z.strictObject({ ref: z.string().min(1), ports: z.array(z.string()).min(1) }),
    returns<VmPublished>(),
  ),
  'vm.unpublish': unary(
    z.strictObject({ ref: z.string().min(1), ports: z.array(z.string()).min(1) }),
    returns<VmPublished>(),
  ),
  'proc.start': unary(proc.startParams, returns<proc.ProcView>()),
  'proc.exec': unary(proc.execParams, returns<proc.ProcExecResult>()),
  'proc.read': unary(proc.readParams, returns<proc.ProcRead>()),
  'proc.write': unary(proc.writeParams, returns<{ written: number }>()),
  'proc.signal': unary(proc.signalParams, returns<proc.ProcStatus>()),
  'proc.wait': unary(proc.waitParams, returns<proc.ProcStatus>()),
  'proc.stream': framed(proc.streamParams),
  'proc.resize': unary(proc.resizeParams, returns<proc.ProcStatus>()),
  'proc.pty': pty(proc.ptyParams),
  'proc.show': unary(proc.idParams, returns<proc.ProcView>()),
  'proc.list': unary(proc.listParams, returns<proc.ProcView[]>()),
  'fs.read': unary(proc.fsReadParams, returns<proc.FsReadResult>()),
  'fs.write': unary(proc.fsWriteParams, returns<proc.FsWriteResult>()),
  'fs.list': unary(proc.fsListParams, returns<proc.FsListResult>()),
  'image.list': unary(none, returns<ImageView[]>()),
  'image.show': unary(z.strictObject({ name: z.string().min(1) }), returns<ImageShowView>()),
  'image.delete': unary(z.strictObject({ name: z.string().min(1) }), returns<{ name: string }>()),
  'image.warm': unary(z.strictObject({ name: z.string().min(1) }), returns<ImageWarmResult>()),
  'image.pull': unary(
    z
      .strictObject({
        ref: z.string().min(1),
        name: z.string().optional(),
        kernel_ref: z.string().optional(),
        kernel: z.string().optional(),
        initrd: z.string().optional(),
        modules: z.string().optional(),
        size: size.optional(),
        sha256: z.string().optional(),
        install_sshd: z.boolean().optional(),
      })
      .transform(parseImageSize),
    returns<ImageView>(),
  ),
  'image.register': unary(
    z.strictObject({
      name: z.string().min(1),
      rootfs: z.string().min(1),
      kernel_ref: z.string().optional(),
      work_seed: z.string().optional(),
    }),
    returns<ImageView>(),
  ),
  'image.refresh': unary(z.strictObject({ name: z.string().min(1) }), returns<ImageRefreshResult>()),
  'image.promote': unary(z.strictObject({ name: z.string().min(1) }), returns<ImageView>()),
  'image.cache.prune': unary(z.strictObject({ dry_run: z.boolean().optional() }), returns<CachePruneResult>()),
  'image.export': unary(z.strictObject({ name: z.string().min(1), out: z.string().min(1) }), returns<ExportResult>()),
  'image.build': unary(
    z
      .strictObject({
        name: z.string().min(1),
        suite: z.string().optional(),
        mirror: z.string().optional(),
        packages: z.array(z.string()).optional(),
        size: size.optional(),
      })
      .transform(parseImageSize),
    returns<ImageView>(),
  ),
  'kernel.list': unary(none, returns<KernelView[]>()),
  'kernel.catalog': unary(none, returns<KernelCatalogView[]>()),
  'kernel.show': unary(z.strictObject({ name: z.string().min(1) }), returns<KernelShowView>()),
  'kernel.delete': unary(z.strictObject({ name: z.string().min(1) }), returns<{ name: string }>()),
  'kernel.import': unary(
    z.strictObject({
      name: z.string().min(1),
      kernel: z.string().optional(),
      initrd: z.string().optional(),
      modules: z.string().optional(),
      from: z.string().optional(),
    }),
    returns<KernelView>(),
  ),
  'kernel.pull': unary(
    z.strictObject({ name: z.string().min(1), force: z.boolean().optional() }),
    returns<KernelView>(),
  ),
} as const satisfies Record<string, AnyMethod>;

export type Method = keyof typeof methods;
type Def<M extends Method> = (typeof methods)[M];
/** What a client sends for method M. */
export type WireParams<M extends Method> = z.input<Def<M>['params']>;
/** What M's handler receives: the params after the schema checked and parsed them. */
export type Params<M extends Method> = z.output<Def<M>['params']>;
/** What M answers. */
export type Result<M extends Method> = Def<M>['result'] extends Carries<infer R> ? R : never;
/** The methods answered with one result. */
export type UnaryMethodName = { [M in Method]: Def<M>['kind'] extends 'unary' ? M : never }[Method];
/** Frames of a streaming method: client → daemon (`In`) and daemon → client (`Out`). */
export type StreamIn<M extends Method> = Def<M> extends { input: Carries<infer I> } ? I : never;
export type StreamOut<M extends Method> = Def<M> extends { output: Carries<infer O> } ? O : never;
/** The methods that stream (see StreamMethod). */
export type StreamMethodName = { [M in Method]: Def<M>['kind'] extends 'stream' ? M : never }[Method];
/** The methods answered with binary frames (see FramedMethod). */
export type FramedMethodName = { [M in Method]: Def<M>['kind'] extends 'framed' ? M : never }[Method];
/** The methods that upgrade to raw terminal bytes (see PtyMethod). */
export type PtyMethodName = { [M in Method]: Def<M>['kind'] extends 'pty' ? M : never }[Method];

export function isMethod(m: string): m is Method {
  return Object.prototype.hasOwnProperty.call(methods, m);
}
