import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageConfigView } from '../../api/methods.js';
import { badRequest, operationFailed } from '../../errors.js';
import { imageFiles } from '../../system/paths.js';

/**
 * What an OCI image's config says about running commands in it (`Env`,
 * `WorkingDir`, `User`; `Entrypoint` and `Cmd` for reference). Recorded at
 * pull time under `config` in the image's manifest.json: it is pull-time
 * provenance like the digests already there, lands atomically with the image
 * dir, and needs no store migration. Exec applies it (applyImageConfig).
 */
export type ImageRuntimeConfig = ImageConfigView;

/** No recorded config (catalog builds, bundles, registered images): the guest's own defaults apply. */
export const NO_RUNTIME_CONFIG: ImageRuntimeConfig = { env: [], working_dir: '', user: '', entrypoint: [], cmd: [] };

const MAX_ENTRIES = 1024;
const MAX_STRING_BYTES = 32 * 1024;
const MAX_MANIFEST_BYTES = 1024 * 1024;

/**
 * The runtime part of an (untrusted) OCI image config, checked and bounded:
 * a value of the wrong type or over the bounds is a bad_request naming it.
 * `Env` entries must be NAME=value.
 */
export function runtimeConfig(config: unknown, what: string): ImageRuntimeConfig {
  if (config === undefined || config === null) return { ...NO_RUNTIME_CONFIG };
  const bad = (field: string, why: string): never => {
    throw badRequest(`${what}: image config ${field} ${why}`, 'fix the image config (docker inspect shows it)');
  };
  if (typeof config !== 'object' || Array.isArray(config)) return bad('config', 'is not an object');
  const c = config as Record<string, unknown>;
  const str = (field: string): string => {
    const v = c[field];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') return bad(field, 'is not a string');
    if (Buffer.byteLength(v) > MAX_STRING_BYTES) return bad(field, `is longer than ${MAX_STRING_BYTES} bytes`);
    if (v.includes('\0')) return bad(field, 'contains a NUL byte');
    return v;
  };
  const list = (field: string): string[] => {
    const v = c[field];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) return bad(field, 'is not a list');
    if (v.length > MAX_ENTRIES) return bad(field, `has ${v.length} entries (at most ${MAX_ENTRIES})`);
    return v.map((x, i) => {
      if (typeof x !== 'string') return bad(`${field}[${i}]`, 'is not a string');
      if (Buffer.byteLength(x) > MAX_STRING_BYTES)
        return bad(`${field}[${i}]`, `is longer than ${MAX_STRING_BYTES} bytes`);
      if (x.includes('\0')) return bad(`${field}[${i}]`, 'contains a NUL byte');
      return x;
    });
  };
  const env = list('Env');
  env.forEach((e, i) => {
    if (!/^[^=]+=/.test(e)) bad(`Env[${i}]`, `${JSON.stringify(e.slice(0, 64))} is not NAME=value`);
  });
  return { env, working_dir: str('WorkingDir'), user: str('User'), entrypoint: list('Entrypoint'), cmd: list('Cmd') };
}

/** An image's manifest.json as a JSON object (bounded read), or undefined when the image has none. */
export async function readImageManifest(imageDir: string): Promise<Record<string, unknown> | undefined> {
  const path = join(imageDir, imageFiles.manifest);
  let text: string;
  try {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(MAX_MANIFEST_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_MANIFEST_BYTES) throw operationFailed(`${path} is larger than ${MAX_MANIFEST_BYTES} bytes`);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw operationFailed(`${path} is not valid JSON`, { hint: 'delete the image and pull it again' });
  }
  return typeof body === 'object' && body !== null && !Array.isArray(body)
    ? (body as Record<string, unknown>)
    : undefined;
}

/** The recorded runtime config of an image (its manifest.json `config`), or undefined when none was recorded. */
export async function readRuntimeConfig(imageDir: string): Promise<ImageRuntimeConfig | undefined> {
  const path = join(imageDir, imageFiles.manifest);
  const body = await readImageManifest(imageDir);
  const rec = body?.config;
  if (rec === undefined || rec === null) return undefined;
  if (typeof rec !== 'object' || Array.isArray(rec)) throw operationFailed(`${path}: config is not an object`);
  const r = rec as Record<string, unknown>;
  // Stored in our own keys; checked again with the same bounds on the way out.
  return runtimeConfig(
    { Env: r.env, WorkingDir: r.working_dir, User: r.user, Entrypoint: r.entrypoint, Cmd: r.cmd },
    path,
  );
}

const STORED_KEYS: Record<string, string> = {
  env: 'Env',
  working_dir: 'WorkingDir',
  user: 'User',
  entrypoint: 'Entrypoint',
  cmd: 'Cmd',
};

/**
 * A runtime config in banger's own keys (as manifest.json and image bundles
 * carry it) from untrusted input: the same checks and bounds as at pull time
 * (runtimeConfig), and keys other than env, working_dir, user, entrypoint and
 * cmd are refused. Errors are bad_request naming `what` and the field.
 */
export function storedRuntimeConfig(value: unknown, what: string): ImageRuntimeConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw badRequest(`${what}: config is not an object`, 'config holds env, working_dir, user, entrypoint and cmd');
  const oci: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const key = STORED_KEYS[k];
    if (key === undefined || !Object.hasOwn(STORED_KEYS, k))
      throw badRequest(
        `${what}: config has an unknown key ${JSON.stringify(k.slice(0, 64))}`,
        'config holds env, working_dir, user, entrypoint and cmd',
      );
    oci[key] = v;
  }
  return runtimeConfig(oci, what);
}

/** What an exec asks for, before the image's config is applied. */
export interface ExecRequest {
  /** `-e NAME=value` from the user; these win over the image's Env. */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
}

/** An exec with the image's config applied: the environment, directory and user to run as. */
export interface AppliedExec {
  env: Record<string, string>;
  /** Empty: the agent's own directory. */
  cwd: string;
  /** Numeric `User` ("1000" or "1000:1000"); absent when the image names no user (root). */
  uid?: number;
  /** Only when `User` names a group; otherwise the agent's default (the uid). */
  gid?: number;
  /** A `User` given by name ("app", "app:staff"): the caller resolves it in the guest's /etc/passwd. */
  userName?: string;
}

/** A default PATH for images whose config sets none (the one Docker uses). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The image config applied to one exec: the image's Env (PATH defaulted), then
 * the request's env on top; the request's cwd, else WorkingDir; User as uid[:gid]
 * when numeric, else by name for the caller to resolve.
 */
export function applyImageConfig(cfg: ImageRuntimeConfig | undefined, req: ExecRequest): AppliedExec {
  const c = cfg ?? NO_RUNTIME_CONFIG;
  const env: Record<string, string> = { PATH: DEFAULT_PATH };
  for (const e of c.env) {
    const eq = e.indexOf('=');
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  Object.assign(env, req.env ?? {});
  const out: AppliedExec = { env, cwd: req.cwd ?? c.working_dir };
  if (c.user === '') return out;
  const m = /^(\d+)(?::(\d+))?$/.exec(c.user);
  if (m) {
    out.uid = Number(m[1]);
    if (m[2] !== undefined) out.gid = Number(m[2]);
    if (out.uid > 0xffffffff || (out.gid ?? 0) > 0xffffffff)
      throw badRequest(`image config User ${c.user} is out of range`);
  } else out.userName = c.user;
  return out;
}

/**
 * An OCI `User` ("name", "uid", "name:group", "uid:gid", …) resolved against the
 * guest's /etc/passwd and /etc/group text (read through the agent, bounded by
 * the caller). Without a group, the user's primary group from passwd (0 for a
 * uid passwd does not list). A name neither file has is a bad_request naming it.
 */
export function resolveUser(user: string, passwd: string, group: string): { uid: number; gid: number } {
  const [u = '', g] = user.split(':', 2);
  const rows = (text: string): string[][] =>
    text
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.split(':'));
  const num = (s: string | undefined): number | undefined =>
    s !== undefined && /^\d{1,10}$/.test(s) && Number(s) <= 0xffffffff ? Number(s) : undefined;
  const users = rows(passwd);
  const entry =
    users.find((r) => r[0] === u) ?? (num(u) === undefined ? undefined : users.find((r) => num(r[2]) === num(u)));
  const uid = num(u) ?? num(entry?.[2]);
  if (uid === undefined)
    throw badRequest(`image config User ${JSON.stringify(user)}: no user "${u}" in the guest's /etc/passwd`);
  if (g === undefined) return { uid, gid: num(entry?.[3]) ?? 0 };
  const gid = num(g) ?? num(rows(group).find((r) => r[0] === g)?.[2]);
  if (gid === undefined)
    throw badRequest(`image config User ${JSON.stringify(user)}: no group "${g}" in the guest's /etc/group`);
  return { uid, gid };
}
