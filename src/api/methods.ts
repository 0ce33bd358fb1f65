import { z } from 'zod';

/**
 * Every daemon method with its params schema (strict: unknown keys are
 * rejected by name) and, as a type, its result.
 */
const vmRef = z.strictObject({ ref: z.string().min(1) });

export const paramsSchemas = {
  'daemon.status': z.strictObject({}),
  'daemon.stop': z.strictObject({}),
  'daemon.operations.list': z.strictObject({}),
  'vm.create': z.strictObject({
    name: z.string().optional(),
    image: z.string().optional(),
    vcpu: z.number().optional(),
    memory_mib: z.number().optional(),
    disk_size: z.string().optional(),
    nat: z.boolean().optional(),
    start: z.boolean().optional(),
  }),
  'vm.list': z.strictObject({}),
  'vm.resolve': z.strictObject({ refs: z.array(z.string()).min(1) }),
  'vm.start': vmRef,
  'vm.stop': vmRef,
  'vm.restart': vmRef,
  'vm.kill': z.strictObject({
    ref: z.string().min(1),
    signal: z
      .string()
      .regex(/^SIG[A-Z0-9]+$/)
      .optional(),
  }),
  'vm.set': z.strictObject({
    ref: z.string().min(1),
    vcpu: z.number().optional(),
    memory_mib: z.number().optional(),
    disk_size: z.string().optional(),
  }),
  'vm.prune': z.strictObject({}),
  'vm.show': vmRef,
  'vm.delete': vmRef,
  'vm.ssh_info': vmRef,
  'vm.logs': z.strictObject({ ref: z.string().min(1), tail_bytes: z.number().int().positive().optional() }),
  'vm.stats': vmRef,
  'image.list': z.strictObject({}),
  'image.show': z.strictObject({ name: z.string().min(1) }),
  'image.delete': z.strictObject({ name: z.string().min(1) }),
  'image.pull': z.strictObject({
    ref: z.string().min(1),
    name: z.string().optional(),
    kernel_ref: z.string().optional(),
    kernel: z.string().optional(),
    initrd: z.string().optional(),
    modules: z.string().optional(),
    size: z.string().optional(),
    sha256: z.string().optional(),
  }),
  'image.register': z.strictObject({
    name: z.string().min(1),
    rootfs: z.string().min(1),
    kernel_ref: z.string().optional(),
    work_seed: z.string().optional(),
  }),
  'image.promote': z.strictObject({ name: z.string().min(1) }),
  'image.cache.prune': z.strictObject({ dry_run: z.boolean().optional() }),
  'image.export': z.strictObject({ name: z.string().min(1), out: z.string().min(1) }),
  'image.build': z.strictObject({
    name: z.string().min(1),
    suite: z.string().optional(),
    mirror: z.string().optional(),
    packages: z.array(z.string()).optional(),
    size: z.string().optional(),
  }),
  'kernel.list': z.strictObject({}),
  'kernel.catalog': z.strictObject({}),
  'kernel.show': z.strictObject({ name: z.string().min(1) }),
  'kernel.delete': z.strictObject({ name: z.string().min(1) }),
  'kernel.import': z.strictObject({
    name: z.string().min(1),
    kernel: z.string().optional(),
    initrd: z.string().optional(),
    modules: z.string().optional(),
    from: z.string().optional(),
  }),
  'kernel.pull': z.strictObject({ name: z.string().min(1), force: z.boolean().optional() }),
} as const;

export type Method = keyof typeof paramsSchemas;
export type Params<M extends Method> = z.infer<(typeof paramsSchemas)[M]>;

export function isMethod(m: string): m is Method {
  return Object.prototype.hasOwnProperty.call(paramsSchemas, m);
}

/** What `vm.list` / `vm.show` / `vm.create` return for one VM. */
export interface VmView {
  id: string;
  name: string;
  state: string;
  image: string;
  vcpu: number;
  memory_mib: number;
  disk_bytes: number;
  vmm: string;
  accel: string;
  accel_reason?: string;
  network_mode: string;
  nat: boolean;
  ssh: string | null;
  disk_strategy: string;
  pid: number | null;
  created_at: string;
  /** Problems `vm show` found with the VM's runtime files (e.g. a corrupt handles.json). */
  problems?: string[];
}

export interface ResolvedRef {
  ref: string;
  id?: string;
  name?: string;
  error?: { code: string; message: string; hint?: string };
}

/** Everything the CLI needs to run the system OpenSSH client against a VM. */
export interface SshInfo {
  name: string;
  host: string;
  port: number;
  user: string;
  key: string;
  known_hosts: string;
  host_key_alias: string;
}

/** One entry of `daemon.operations.list`: a request the daemon is serving. */
export interface OperationView {
  op_id: string;
  method: string;
  running_s: number;
}

export interface DaemonStatus {
  pid: number;
  version: string;
  uptime_s: number;
  socket: string;
  state_dir: string;
  operations: number;
}

export interface ImageView {
  id: string;
  name: string;
  source: string;
  kernel: string;
  distro: string;
  size_bytes: number;
  work_seed: boolean;
  created_at: string;
}

export interface KernelView {
  name: string;
  distro: string;
  version: string;
  format: string;
  source: string;
  sha256: string;
  initrd: boolean;
  modules: number;
  traits: { pvhNote?: boolean; virtioMmio?: string };
  created_at: string;
}

export interface KernelCatalogView {
  name: string;
  kind: 'distro' | 'tarball';
  distro: string;
  version: string;
  size: number | null;
  state: 'pulled' | 'available';
}

export interface KernelShowView extends KernelView {
  dir: string;
  kernel: string;
  initrd_path: string | null;
  modules_disk: string | null;
  initrd_kind: string;
  initramfs_modules: string[];
}
