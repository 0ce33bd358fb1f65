/*
 * Request body schemas of the fake firecracker API, modelled on the serde
 * structs of firecracker v1.5.0 (the oldest version banger supports):
 * src/vmm/src/vmm_config/{machine_config,boot_source,drive,net,vsock,metrics}.rs,
 * src/vmm/src/logger/logging.rs and src/api_server/src/request/actions.rs.
 * Rules mirrored from serde: a required field must be present and not null;
 * an Option field may be absent or null; a defaulted field may be absent but
 * not null; integers must fit their Rust type; every struct except
 * MetricsConfig denies unknown fields. Later firecracker versions add optional
 * fields (mtu, huge_pages, logger module, metrics emit_id ...) that the fake
 * rejects as unknown, as v1.5.0 would.
 */

type Kind =
  | { t: 'string' }
  | { t: 'bool' }
  | { t: 'uint'; rust: 'u8' | 'u32' | 'usize'; min?: number; max?: number; rangeMessage?: string }
  | { t: 'object' }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'mac' };

interface Field {
  kind: Kind;
  /** 'required': must be present, non-null. 'option': Option<T>. 'default': #[serde(default)]. */
  presence: 'required' | 'option' | 'default';
}

export interface Schema {
  fields: Record<string, Field>;
  denyUnknown: boolean;
}

const f = (kind: Kind, presence: Field['presence'] = 'required'): Field => ({ kind, presence });
const str: Kind = { t: 'string' };
const bool: Kind = { t: 'bool' };
const obj: Kind = { t: 'object' };
const oneOf = (...values: string[]): Kind => ({ t: 'enum', values });

const vcpus: Kind = { t: 'uint', rust: 'u8', min: 1, max: 32, rangeMessage: 'number of vCPUs must be from 1 to 32' };
const cpuTemplate = oneOf('C3', 'T2', 'T2S', 'T2CL', 'T2A', 'V1N1', 'None');
const LOG_LEVELS = [
  'Off',
  'OFF',
  'Trace',
  'TRACE',
  'Debug',
  'DEBUG',
  'Info',
  'INFO',
  'Warn',
  'WARN',
  'Warning',
  'WARNING',
  'Error',
  'ERROR',
];

export const SCHEMAS = {
  machineConfig: {
    denyUnknown: true,
    fields: {
      vcpu_count: f(vcpus),
      mem_size_mib: f({ t: 'uint', rust: 'usize' }),
      smt: f(bool, 'default'),
      cpu_template: f(cpuTemplate, 'default'),
      track_dirty_pages: f(bool, 'default'),
    },
  },
  machineConfigUpdate: {
    denyUnknown: true,
    fields: {
      vcpu_count: f(vcpus, 'option'),
      mem_size_mib: f({ t: 'uint', rust: 'usize' }, 'option'),
      smt: f(bool, 'option'),
      cpu_template: f(cpuTemplate, 'option'),
      track_dirty_pages: f(bool, 'option'),
    },
  },
  bootSource: {
    denyUnknown: true,
    fields: { kernel_image_path: f(str), initrd_path: f(str, 'option'), boot_args: f(str, 'option') },
  },
  drive: {
    denyUnknown: true,
    fields: {
      drive_id: f(str),
      path_on_host: f(str),
      is_root_device: f(bool),
      partuuid: f(str, 'option'),
      is_read_only: f(bool),
      cache_type: f(oneOf('Unsafe', 'Writeback'), 'default'),
      rate_limiter: f(obj, 'option'),
      io_engine: f(oneOf('Sync', 'Async'), 'default'),
    },
  },
  driveUpdate: {
    denyUnknown: true,
    fields: { drive_id: f(str), path_on_host: f(str, 'option'), rate_limiter: f(obj, 'option') },
  },
  networkInterface: {
    denyUnknown: true,
    fields: {
      iface_id: f(str),
      host_dev_name: f(str),
      guest_mac: f({ t: 'mac' }, 'option'),
      rx_rate_limiter: f(obj, 'option'),
      tx_rate_limiter: f(obj, 'option'),
    },
  },
  networkInterfaceUpdate: {
    denyUnknown: true,
    fields: { iface_id: f(str), rx_rate_limiter: f(obj, 'option'), tx_rate_limiter: f(obj, 'option') },
  },
  vsock: {
    denyUnknown: true,
    fields: { vsock_id: f(str, 'option'), guest_cid: f({ t: 'uint', rust: 'u32' }), uds_path: f(str) },
  },
  logger: {
    denyUnknown: true,
    fields: {
      log_path: f(str, 'option'),
      level: f(oneOf(...LOG_LEVELS), 'option'),
      show_level: f(bool, 'option'),
      show_log_origin: f(bool, 'option'),
    },
  },
  // MetricsConfig has no deny_unknown_fields in firecracker: extra fields are ignored.
  metrics: { denyUnknown: false, fields: { metrics_path: f(str) } },
  vm: {
    denyUnknown: true,
    fields: { state: f(oneOf('Paused', 'Resumed')) },
  },
  action: {
    denyUnknown: true,
    fields: { action_type: f(oneOf('FlushMetrics', 'InstanceStart', 'SendCtrlAltDel')) },
  },
} satisfies Record<string, Schema>;

const RUST_MAX = { u8: 0xff, u32: 0xffff_ffff, usize: Number.MAX_SAFE_INTEGER } as const;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (typeof v === 'boolean') return `boolean \`${v}\``;
  if (typeof v === 'number') return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  return Array.isArray(v) ? 'sequence' : 'map';
}

const expected = (k: Kind): string =>
  k.t === 'string'
    ? 'a string'
    : k.t === 'bool'
      ? 'a boolean'
      : k.t === 'uint'
        ? k.rust
        : k.t === 'object'
          ? 'a map'
          : k.t === 'mac'
            ? 'a MAC address such as 06:00:ac:10:00:02'
            : `one of ${k.values.map((v) => `\`${v}\``).join(', ')}`;

const isMac = (s: string): boolean => /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(s);

/** Checks one value against its kind; returns serde-like wording of the problem, or undefined. */
function checkValue(name: string, k: Kind, v: unknown): string | undefined {
  const bad = (): string => `invalid type: ${describe(v)}, expected ${expected(k)} (field \`${name}\`)`;
  switch (k.t) {
    case 'string':
      return typeof v === 'string' ? undefined : bad();
    case 'bool':
      return typeof v === 'boolean' ? undefined : bad();
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v) ? undefined : bad();
    case 'enum':
      if (typeof v !== 'string') return bad();
      return k.values.includes(v) ? undefined : `unknown variant \`${v}\`, expected ${expected(k)} (field \`${name}\`)`;
    case 'mac':
      if (typeof v !== 'string') return bad();
      return isMac(v) ? undefined : `invalid MAC address ${JSON.stringify(v)} (field \`${name}\`)`;
    case 'uint': {
      if (typeof v !== 'number' || !Number.isInteger(v)) return bad();
      if (v < 0 || v > RUST_MAX[k.rust])
        return `invalid value: integer \`${v}\`, expected ${k.rust} (field \`${name}\`)`;
      if ((k.min !== undefined && v < k.min) || (k.max !== undefined && v > k.max))
        return `invalid value: ${k.rangeMessage ?? 'out of range'} (field \`${name}\`)`;
      return undefined;
    }
  }
}

export type Decoded = { ok: true; value: Record<string, unknown> } | { ok: false; message: string };

/** Parses a JSON body against a schema the way firecracker's serde structs would. */
export function decodeBody(schema: Schema, raw: string): Decoded {
  const fail = (m: string): Decoded => ({
    ok: false,
    message: `An error occurred when deserializing the json body of a request: ${m}.`,
  });
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (e) {
    return fail(`malformed JSON (${(e as Error).message})`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return fail(`invalid type: ${describe(body)}, expected a struct`);
  const value = body as Record<string, unknown>;
  const names = Object.keys(schema.fields);
  if (schema.denyUnknown) {
    const unknown = Object.keys(value).find((k) => !names.includes(k));
    if (unknown !== undefined)
      return fail(`unknown field \`${unknown}\`, expected one of ${names.map((n) => `\`${n}\``).join(', ')}`);
  }
  for (const [name, field] of Object.entries(schema.fields)) {
    const v = value[name];
    if (v === undefined) {
      if (field.presence === 'required') return fail(`missing field \`${name}\``);
      continue;
    }
    if (v === null && field.presence === 'option') {
      delete value[name];
      continue;
    }
    const problem = checkValue(name, field.kind, v);
    if (problem !== undefined) return fail(problem);
  }
  return { ok: true, value };
}
