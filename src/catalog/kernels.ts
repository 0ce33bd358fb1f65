import type { DistroKernelEntry } from './embedded.js';
import { badRequest, errorMessage } from '../errors.js';

/** A sha256-pinned `tar.zst` kernel from the catalog file (SPEC §5). */
export interface TarballKernelEntry {
  kind: 'tarball';
  name: string;
  distro: string;
  version: string;
  url: string;
  /** 64 lowercase hex digits. */
  sha256: string;
  /** Bytes of the tarball; optional, shown in listings. */
  size?: number;
}

export type KernelCatalogEntry = DistroKernelEntry | TarballKernelEntry;

const NAME_MAX = 64;
const NAME_CHAR = /^[A-Za-z0-9._-]$/;
const NAME_HINT = `use letters, digits, ".", "-" and "_" (1-${NAME_MAX} characters)`;
const FILE_HINT =
  'the catalog file is JSON: {"kernels": [{"name": "...", "distro": "...", "version": "...", "url": "https://.../kernel.tar.zst", "sha256": "<64 hex digits>"}]}';

const TOP_KEYS = ['kernels', 'images'] as const;
const KERNEL_KEYS = ['name', 'distro', 'version', 'url', 'tarball_url', 'sha256', 'tarball_sha256', 'size'] as const;
const URL_SCHEMES = new Set(['http:', 'https:', 'file:']);

/** Why `name` is not a valid kernel name, or undefined when it is. */
function kernelNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'kernel name must not be empty';
  // Names become directory names: '.' and '..' would address the wrong directory.
  if (name === '.' || name === '..') return `invalid kernel name ${JSON.stringify(name)}`;
  let pos = 0;
  for (const ch of name) {
    pos++;
    if (!NAME_CHAR.test(ch)) {
      return `invalid kernel name ${JSON.stringify(name)}: character ${JSON.stringify(ch)} at position ${pos} is not allowed`;
    }
  }
  if (name.length > NAME_MAX)
    return `invalid kernel name ${JSON.stringify(name)}: ${name.length} characters, at most ${NAME_MAX} allowed`;
  return undefined;
}

/** Validates a kernel name (letters, digits, '.', '-', '_'; 1-64 chars; not '.' or '..'). */
export function validateKernelName(name: string): void {
  const problem = kernelNameProblem(name);
  if (problem !== undefined) throw badRequest(problem, NAME_HINT);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function hasControlChar(text: string): boolean {
  return /[\u0000-\u001f\u007f]/.test(text);
}

/** Rejects keys outside `known`, naming the full path of the first one (e.g. `kernels[1].sha`). */
function checkKeys(obj: Record<string, unknown>, known: readonly string[], prefix: string, source: string): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) {
      const path = prefix === '' ? key : `${prefix}.${key}`;
      throw badRequest(
        `${source}: unknown key ${path}`,
        `known keys${prefix === '' ? '' : ` of ${prefix}`}: ${known.join(', ')}`,
      );
    }
  }
}

function parseKernel(raw: unknown, path: string, source: string): TarballKernelEntry {
  const fail = (message: string, hint = FILE_HINT): never => {
    throw badRequest(`${source}: ${message}`, hint);
  };
  if (!isObject(raw)) return fail(`${path} must be an object`);
  checkKeys(raw, KERNEL_KEYS, path, source);

  const text = (key: string, value: unknown): string => {
    if (value === undefined) return fail(`${path}.${key} is required`);
    if (typeof value !== 'string' || value.trim() === '') return fail(`${path}.${key} must be a non-empty string`);
    if (hasControlChar(value)) return fail(`${path}.${key} must not contain control characters`);
    return value;
  };
  const alias = (key: string, alt: string): [string, unknown] => {
    if (raw[key] !== undefined && raw[alt] !== undefined) fail(`${path} has both ${key} and ${alt}; give one`);
    return raw[alt] !== undefined ? [alt, raw[alt]] : [key, raw[key]];
  };

  const name = text('name', raw.name);
  const nameProblem = kernelNameProblem(name);
  if (nameProblem !== undefined) fail(`${path}.name: ${nameProblem}`, NAME_HINT);
  const distro = text('distro', raw.distro);
  const version = text('version', raw.version);

  const [urlKey, urlValue] = alias('url', 'tarball_url');
  const url = text(urlKey, urlValue);
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || !URL_SCHEMES.has(parsed.protocol)) {
    fail(`${path}.${urlKey} must be an absolute https://, http:// or file:// URL: ${JSON.stringify(url)}`);
  }

  const [shaKey, shaValue] = alias('sha256', 'tarball_sha256');
  const sha = text(shaKey, shaValue);
  if (!/^[0-9a-fA-F]{64}$/.test(sha)) {
    fail(
      `${path}.${shaKey} must be 64 hex digits, got ${JSON.stringify(sha)}`,
      'compute it with `sha256sum kernel.tar.zst`',
    );
  }

  const entry: TarballKernelEntry = { kind: 'tarball', name, distro, version, url, sha256: sha.toLowerCase() };
  if (raw.size !== undefined) {
    if (typeof raw.size !== 'number' || !Number.isSafeInteger(raw.size) || raw.size < 0) {
      fail(`${path}.size must be a whole number of bytes`);
    }
    entry.size = raw.size as number;
  }
  return entry;
}

/**
 * Parses the catalog file's JSON text:
 * { "kernels": [ {name, distro, version, url|tarball_url, sha256|tarball_sha256, size?} ], "images": [...] }.
 * Unknown keys are rejected naming their path; kernel names must be unique;
 * `images` entries are kept raw for a later feature. `source` (the path or URL)
 * prefixes every error message.
 */
export function parseCatalogFile(text: string, source: string): { kernels: TarballKernelEntry[]; images: unknown[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw badRequest(`${source}: not valid JSON: ${errorMessage(e)}`, FILE_HINT);
  }
  if (!isObject(doc)) throw badRequest(`${source}: the catalog must be a JSON object`, FILE_HINT);
  checkKeys(doc, TOP_KEYS, '', source);

  const list = (key: (typeof TOP_KEYS)[number]): unknown[] => {
    const v = doc[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw badRequest(`${source}: ${key} must be an array`, FILE_HINT);
    return v;
  };

  const kernels: TarballKernelEntry[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of list('kernels').entries()) {
    const entry = parseKernel(raw, `kernels[${i}]`, source);
    if (seen.has(entry.name)) {
      throw badRequest(
        `${source}: kernels[${i}].name: kernel ${JSON.stringify(entry.name)} is listed twice`,
        'give every kernel a unique name',
      );
    }
    seen.add(entry.name);
    kernels.push(entry);
  }
  return { kernels, images: list('images') };
}

/** Embedded entries overlaid by file entries with the same name (file wins), sorted by name. */
export function mergeKernelCatalog(
  embedded: readonly DistroKernelEntry[],
  file: readonly TarballKernelEntry[],
): KernelCatalogEntry[] {
  const byName = new Map<string, KernelCatalogEntry>();
  for (const e of embedded) byName.set(e.name, e);
  for (const e of file) byName.set(e.name, e);
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
