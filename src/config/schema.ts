import { isIP } from 'node:net';
import { z } from 'zod';
import { AppError, badRequest } from '../errors.js';
import { checkDiskSize, parseDuration, parseSize } from './sizes.js';

/*
 * The shape of config.toml (SPEC §3). Keys are the file's snake_case names;
 * sizes and durations come out already converted (bytes, ms, MiB). Every table
 * is strict: unknown keys are rejected so typos do not silently fall back to
 * defaults.
 */

const MIB = 1024 * 1024;

/** A custom issue whose message is a template: '{path}' is replaced by the key path. */
function pushIssue(ctx: z.RefinementCtx, input: unknown, message: string, hint: string): void {
  ctx.issues.push({ code: 'custom', message, input, params: { hint } });
}

function appErrorParts(e: unknown): { message: string; hint: string } | undefined {
  if (e instanceof AppError) return { message: e.message, hint: e.hint ?? '' };
  return undefined;
}

const sizeField = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseSize(v, '{path}');
  } catch (e) {
    const p = appErrorParts(e);
    if (p === undefined) throw e;
    pushIssue(ctx, v, p.message, p.hint);
    return z.NEVER;
  }
});

/** A disk size: a size of at most MAX_DISK_BYTES. */
const diskSizeField = sizeField.transform((bytes, ctx) => {
  try {
    return checkDiskSize(bytes, '{path}');
  } catch (e) {
    const p = appErrorParts(e);
    if (p === undefined) throw e;
    pushIssue(ctx, bytes, p.message, p.hint);
    return z.NEVER;
  }
});

const durationField = (opts: { allowZero: boolean }) =>
  z.string().transform((v, ctx) => {
    let ms: number;
    try {
      ms = parseDuration(v, '{path}');
    } catch (e) {
      const p = appErrorParts(e);
      if (p === undefined) throw e;
      pushIssue(ctx, v, p.message, p.hint);
      return z.NEVER;
    }
    if (ms === 0 && !opts.allowZero) {
      pushIssue(ctx, v, '{path} must be longer than 0', 'use a positive duration such as 90s');
      return z.NEVER;
    }
    return ms;
  });

/** Memory in MiB: an integer number of MiB, or a size string that is a whole number of MiB. */
const memoryField = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const hint = 'use a whole number of MiB (at least 128) or a size such as 2G';
  let mib: number;
  if (typeof v === 'number') {
    mib = v;
  } else {
    let bytes: number;
    try {
      bytes = parseSize(v, '{path}');
    } catch (e) {
      const p = appErrorParts(e);
      if (p === undefined) throw e;
      pushIssue(ctx, v, p.message, hint);
      return z.NEVER;
    }
    mib = bytes / MIB;
  }
  if (!Number.isInteger(mib) || mib < 128) {
    pushIssue(
      ctx,
      v,
      `invalid memory size for {path}: ${JSON.stringify(String(v))} (need a whole number of MiB, at least 128)`,
      hint,
    );
    return z.NEVER;
  }
  return mib;
});

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function splitHostPort(s: string): { host: string; port: string } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:[\]]+):(\d+)$/.exec(s);
  if (m === null || m[1] === undefined || m[2] === undefined) return undefined;
  return { host: m[1], port: m[2] };
}

function validPort(p: string): boolean {
  const n = Number(p);
  return /^\d{1,5}$/.test(p) && n >= 1 && n <= 65535;
}

/** 'host:port' where host is a DNS name, an IPv4 address or a bracketed IPv6 address. */
export function isHostPort(s: string): boolean {
  const hp = splitHostPort(s);
  if (hp === undefined || !validPort(hp.port)) return false;
  if (s.startsWith('[')) return isIP(hp.host) === 6;
  return isIP(hp.host) === 4 || HOSTNAME.test(hp.host);
}

/** 'ip:port' where ip is IPv4 or a bracketed IPv6 address. */
export function isIpPort(s: string): boolean {
  const hp = splitHostPort(s);
  if (hp === undefined || !validPort(hp.port)) return false;
  return s.startsWith('[') ? isIP(hp.host) === 6 : isIP(hp.host) === 4;
}

/** An http:// or https:// URL with a host. */
export function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/** 'br-fc' or 'br-fc-<suffix>', and short enough for a Linux interface name (15 bytes). */
export function isBridgeName(s: string): boolean {
  return s.length <= 15 && /^br-fc(?:-[A-Za-z0-9][A-Za-z0-9_.-]*)?$/.test(s);
}

const GUEST_PREFIXES = ['~/', '/root/'] as const;

const nonEmpty = z.string().min(1);

export const vmDefaultsSchema = z.strictObject({
  vcpu: z.number().int().min(1).optional(),
  memory_mib: memoryField.optional(),
  disk_size: diskSizeField.optional(),
  system_overlay_size: diskSizeField.optional(),
});

export const fileSyncEntrySchema = z.strictObject({
  host: nonEmpty,
  guest: z.string().superRefine((v, ctx) => {
    const under = GUEST_PREFIXES.find((p) => v.startsWith(p));
    if (under === undefined || v.length === under.length) {
      pushIssue(
        ctx,
        v,
        `{path} must be a path under ~/ or /root/: ${JSON.stringify(v)}`,
        'file_sync copies into the home directory of the guest\'s root user, e.g. guest = "~/.gitconfig"',
      );
    } else if (v.split('/').includes('..')) {
      pushIssue(
        ctx,
        v,
        `{path} must not contain "..": ${JSON.stringify(v)}`,
        'write the guest path without ".." components',
      );
    }
  }),
  mode: z
    .string()
    .regex(/^[0-7]{3,4}$/)
    .optional(),
});

export const configFileSchema = z.strictObject({
  log_level: z.enum(['debug', 'info', 'warn', 'error']).optional(),
  vmm: z.enum(['auto', 'firecracker', 'qemu']).optional(),
  accel: z.enum(['auto', 'kvm', 'tcg']).optional(),
  firecracker_bin: nonEmpty.optional(),
  qemu_bin: nonEmpty.optional(),
  ssh_key_path: nonEmpty.optional(),
  ssh_wait_timeout: durationField({ allowZero: false }).optional(),
  insecure_registries: z.array(z.string().refine(isHostPort)).optional(),
  catalog: nonEmpty.optional(),
  default_image_name: nonEmpty.optional(),
  default_kernel_name: nonEmpty.optional(),
  mirror: z.string().refine(isHttpUrl).optional(),
  network_mode: z.enum(['user', 'bridge']).optional(),
  bridge_name: z.string().refine(isBridgeName).optional(),
  bridge_ip: z.ipv4().optional(),
  cidr: z.number().int().min(1).max(30).optional(),
  dns_listen: z.string().refine(isIpPort).optional(),
  api_listen: z.string().refine(isIpPort).optional(),
  api_listen_remote: z.boolean().optional(),
  auto_stop_stale_after: durationField({ allowZero: true }).optional(),
  max_unpacked_size: sizeField.optional(),
  warm_start: z.boolean().optional(),
  warm_start_background: z.boolean().optional(),
  test_install_sshd_offline: z.boolean().optional(),
  test_assume_kvm: z.boolean().optional(),
  test_template_boot: z.boolean().optional(),
  test_skip_reseed: z.boolean().optional(),
  test_rng_sample: z.boolean().optional(),
  vm_defaults: vmDefaultsSchema.optional(),
  file_sync: z.array(fileSyncEntrySchema).optional(),
});

export type ConfigFile = z.output<typeof configFileSchema>;

/** Known keys per table, as the user writes them ('' is the top level). */
export const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': Object.keys(configFileSchema.shape),
  vm_defaults: Object.keys(vmDefaultsSchema.shape).map((k) => `vm_defaults.${k}`),
  'file_sync[]': Object.keys(fileSyncEntrySchema.shape).map((k) => `file_sync[].${k}`),
};

/** What each key accepts, by path pattern (array indices written as '[]'). */
const EXPECTED: Readonly<Record<string, string>> = {
  log_level: 'one of "debug", "info", "warn", "error"',
  vmm: 'one of "auto", "firecracker", "qemu"',
  accel: 'one of "auto", "kvm", "tcg"',
  firecracker_bin: 'a non-empty string (program name or path)',
  qemu_bin: 'a non-empty string (program name or path)',
  ssh_key_path: 'a non-empty string (path to a private key)',
  ssh_wait_timeout: 'a duration string such as "90s"',
  insecure_registries: 'an array of "host:port" strings',
  'insecure_registries[]': 'a "host:port" string such as "10.0.0.5:5000"',
  catalog: 'a non-empty string',
  default_image_name: 'a non-empty string',
  default_kernel_name: 'a non-empty string',
  mirror: 'an http(s) URL such as "http://deb.debian.org/debian"',
  network_mode: 'one of "user", "bridge"',
  bridge_name: '"br-fc" or "br-fc-<suffix>" (at most 15 characters)',
  bridge_ip: 'an IPv4 address such as "172.16.0.1"',
  cidr: 'an integer prefix length from 1 to 30',
  dns_listen: 'an "ip:port" string such as "127.0.0.1:42069"',
  api_listen: 'an "ip:port" string such as "127.0.0.1:7681"',
  api_listen_remote: 'true or false',
  auto_stop_stale_after: 'a duration string such as "2h" ("0" disables)',
  max_unpacked_size: 'a size such as "32G"',
  warm_start: 'true or false',
  warm_start_background: 'true or false',
  test_install_sshd_offline: 'true or false (test-only)',
  test_assume_kvm: 'true or false (test-only)',
  test_template_boot: 'true or false (test-only)',
  test_skip_reseed: 'true or false (test-only)',
  test_rng_sample: 'true or false (test-only)',
  vm_defaults: 'a table ([vm_defaults])',
  'vm_defaults.vcpu': 'an integer of at least 1',
  'vm_defaults.memory_mib': 'a whole number of MiB (at least 128) or a size such as "2G"',
  'vm_defaults.disk_size': 'a size such as "8G"',
  'vm_defaults.system_overlay_size': 'a size such as "8G"',
  file_sync: 'an array of tables ([[file_sync]])',
  'file_sync[]': 'a table with host and guest',
  'file_sync[].host': 'a non-empty string (path on the host)',
  'file_sync[].guest': 'a string path under ~/ or /root/',
  'file_sync[].mode': 'a string of octal digits such as "0600"',
};

function pathString(path: readonly PropertyKey[]): string {
  let out = '';
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else out += out === '' ? String(k) : `.${String(k)}`;
  }
  return out;
}

function pathPattern(path: readonly PropertyKey[]): string {
  return pathString(path).replace(/\[\d+\]/g, '[]');
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v instanceof Date) return 'a date';
  if (Array.isArray(v)) return 'an array';
  return 'a table';
}

function issueToError(issue: z.core.$ZodIssue, source: string): AppError {
  const path = pathString(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const prefix = path === '' ? '' : `${path}.`;
    const keys = issue.keys.map((k) => `"${prefix}${k}"`);
    const known = KNOWN_KEYS[pathPattern(issue.path)] ?? [];
    return badRequest(
      `${source}: unknown key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`,
      `remove ${keys.length > 1 ? 'them' : 'it'} or check the spelling; known keys: ${known.join(', ')}`,
    );
  }
  // Issues from pushIssue carry a full message template and a hint; plain .refine() failures do not.
  const hint: unknown = issue.code === 'custom' ? issue.params?.['hint'] : undefined;
  if (typeof hint === 'string') {
    return badRequest(`${source}: ${issue.message.replace('{path}', path)}`, hint);
  }
  const expected = EXPECTED[pathPattern(issue.path)] ?? 'a valid value';
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return badRequest(`${source}: missing required key "${path}" (expected ${expected})`, `add ${path} to ${source}`);
  }
  return badRequest(
    `${source}: invalid value for ${path}: expected ${expected}, got ${describe(issue.input)}`,
    `fix ${path} in ${source}, or remove it to use the default`,
  );
}

/** Validates parsed TOML against the config schema; the first problem becomes a badRequest naming `source` and the key path. */
export function validateConfigFile(data: unknown, source: string): ConfigFile {
  const r = configFileSchema.safeParse(data, { reportInput: true });
  if (r.success) return r.data;
  const issues = [...r.error.issues];
  const first = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
  if (first === undefined) throw badRequest(`${source}: invalid configuration`);
  throw issueToError(first, source);
}
