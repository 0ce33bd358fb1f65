import { badRequest } from '../errors.js';

/*
 * OCI image references: [registry[:port]/]repository[:tag][@sha256:hex].
 * The grammar follows the one docker and the distribution spec use:
 * the first path component is a registry when it contains '.' or ':' or is
 * 'localhost'; otherwise the image lives on Docker Hub, where one-component
 * names are official images under 'library/'.
 */

export interface ImageRef {
  /** 'registry-1.docker.io' for Docker Hub, else host[:port] as written (host lowercased). */
  registry: string;
  /** e.g. 'library/debian'. */
  repository: string;
  tag?: string;
  /** 'sha256:<64 hex>'. */
  digest?: string;
}

export const DOCKER_HUB = 'registry-1.docker.io';
/** Names users write for Docker Hub; all mean DOCKER_HUB. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
const DEFAULT_TAG = 'latest';

const REF_HINT =
  'an OCI image reference looks like [registry/]repository[:tag][@sha256:digest], e.g. docker.io/library/debian:bookworm or 127.0.0.1:5000/team/app:v1';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
const DOMAIN_LABEL = /^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])$/;
const IPV6_HOST = /^\[[A-Fa-f0-9:.]+\]$/;
const MAX_NAME = 255;

/** True for a 'sha256:<64 lowercase hex>' digest, the only algorithm banger accepts. */
export function isSha256Digest(s: string): boolean {
  return SHA256_DIGEST.test(s);
}

/** Docker Hub spellings folded to DOCKER_HUB; other hosts lowercased. */
export function normalizeRegistry(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? DOCKER_HUB : lower;
}

/** True when host[:port] is syntactically a registry address (DNS name, IPv4 or [IPv6], optional port). */
export function isRegistryHost(s: string): boolean {
  let host = s;
  const m = /^(.*?)(?::(\d{1,5}))?$/.exec(s);
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) return false;
    host = s.slice(0, close + 1);
    const rest = s.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return false;
    if (rest !== '' && Number(rest.slice(1)) > 65535) return false;
    return IPV6_HOST.test(host);
  }
  if (m === null) return false;
  host = m[1] ?? '';
  if (m[2] !== undefined && Number(m[2]) > 65535) return false;
  if (host === '' || host.length > 253) return false;
  return host.split('.').every((label) => DOMAIN_LABEL.test(label));
}

/** True when the first path component of a reference names a registry rather than a Docker Hub namespace. */
function looksLikeRegistry(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component.startsWith('[');
}

/**
 * Parses an image reference. Docker Hub names are normalised
 * ('alpine' → registry-1.docker.io, library/alpine, tag latest); a reference
 * with neither tag nor digest gets tag 'latest'; with a digest and no tag,
 * tag stays undefined. Anything malformed is a badRequest saying which part.
 */
export function parseReference(ref: string): ImageRef {
  const bad = (what: string): never => {
    throw badRequest(`invalid image reference ${JSON.stringify(ref)}: ${what}`, REF_HINT);
  };
  if (ref === '') bad('it is empty');
  if (/[\s\x00-\x1f\x7f]/.test(ref)) bad('it contains whitespace or control characters');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) bad('write it without a URL scheme (no http:// or https://)');

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (digest.includes('@')) bad("more than one '@'");
    if (!digest.includes(':'))
      bad(`digest ${JSON.stringify(digest)} has no algorithm; expected sha256:<64 hex digits>`);
    const algo = digest.slice(0, digest.indexOf(':'));
    if (algo !== 'sha256') bad(`unsupported digest algorithm ${JSON.stringify(algo)}; only sha256 is supported`);
    if (!SHA256_DIGEST.test(digest))
      bad(`digest ${JSON.stringify(digest)} is not sha256: followed by 64 lowercase hex digits`);
  }

  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  const lastSlash = rest.lastIndexOf('/');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (tag === '') bad("empty tag after ':'");
    if (!TAG.test(tag))
      bad(`tag ${JSON.stringify(tag)} is invalid (1-128 characters of A-Z a-z 0-9 _ . -, not starting with . or -)`);
  }

  if (rest === '') bad('no repository name');
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  const first = parts[0] ?? '';
  if (parts.length > 1 && looksLikeRegistry(first)) {
    if (!isRegistryHost(first)) bad(`registry ${JSON.stringify(first)} is not a valid host[:port]`);
    registry = normalizeRegistry(first);
    parts.shift();
  }
  if (parts.length === 0) bad('no repository name after the registry');
  for (const p of parts) {
    if (p === '') bad("empty path component (a leading, trailing or doubled '/')");
    if (p !== p.toLowerCase()) bad(`repository name ${JSON.stringify(parts.join('/'))} must be lowercase`);
    if (!PATH_COMPONENT.test(p)) {
      bad(
        `repository component ${JSON.stringify(p)} is invalid (lowercase letters and digits, separated by '.', '_', '__' or '-')`,
      );
    }
  }
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (repository.length > MAX_NAME) bad(`repository name is longer than ${MAX_NAME} characters`);

  const out: ImageRef = { registry, repository };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  if (tag === undefined && digest === undefined) out.tag = DEFAULT_TAG;
  return out;
}

/** The reference written back out, Docker Hub as 'docker.io': for messages. */
export function formatReference(ref: ImageRef): string {
  const host = ref.registry === DOCKER_HUB ? 'docker.io' : ref.registry;
  return `${host}/${ref.repository}${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
}

const MAX_IMAGE_NAME = 63;
const MAX_SUFFIX = 40;
const DIGEST_PREFIX_HEX = 12;

function sanitize(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-');
}

const trimEdges = (s: string): string => s.replace(/^[^a-z0-9]+/, '').replace(/[^a-z0-9]+$/, '');

/**
 * A banger image name for a pulled reference: '<last repository component>-<tag>',
 * or '<last component>-<first 12 hex of the digest>' for a digest-only
 * reference. Lowercase a-z 0-9 . _ -, starting and ending with a letter or
 * digit, 1-63 characters (the repository part is shortened first).
 */
export function deriveImageName(ref: ImageRef): string {
  const base = trimEdges(sanitize(ref.repository.split('/').pop() ?? '')) || 'image';
  const rawSuffix =
    ref.tag ?? (ref.digest === undefined ? DEFAULT_TAG : (ref.digest.split(':')[1] ?? '').slice(0, DIGEST_PREFIX_HEX));
  const suffix = trimEdges(sanitize(rawSuffix).slice(0, MAX_SUFFIX));
  if (suffix === '') return trimEdges(base.slice(0, MAX_IMAGE_NAME)) || 'image';
  const room = MAX_IMAGE_NAME - 1 - suffix.length;
  const head = trimEdges(base.slice(0, room)) || 'image'.slice(0, room);
  return `${head}-${suffix}`;
}

/**
 * SPEC §6.1: a bare word naming a catalog entry is the catalog entry; anything
 * containing '/', ':' or '@' is an OCI reference.
 */
export function isCatalogWord(s: string): boolean {
  return s !== '' && !/[/:@]/.test(s);
}
