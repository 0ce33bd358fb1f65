import { badRequest, notFound, operationFailed } from '../errors.js';
import { sha256Digest } from '../net/hashing.js';
import { layerCompression } from './layers.js';
import { formatReference, isSha256Digest, type ImageRef } from './reference.js';

/*
 * The OCI image documents a registry serves, checked and parsed: manifests,
 * image indexes (manifest lists) and the config blob. Pure; the HTTP side is
 * registry.ts.
 */

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface ImageManifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageConfig {
  rootfs: { type: string; diff_ids: string[] };
  config?: { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string; User?: string };
  architecture?: string;
  os?: string;
}

export interface ResolvedImage {
  manifest: ImageManifest;
  manifestDigest: string;
  config: ImageConfig;
  configDigest: string;
}

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

export const INDEX_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList]);
const MANIFEST_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
const CONFIG_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociConfig, MEDIA_TYPES.dockerConfig]);
const SCHEMA1_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);

/** Manifest media types this client understands, most specific first. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
].join(', ');

const WANT_OS = 'linux';
const WANT_ARCH = 'amd64';
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
export const MAX_INDEX_DEPTH = 3;

export function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

export interface FetchedManifest {
  body: Record<string, unknown>;
  mediaType: string;
  digest: string;
}

export interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: unknown; architecture?: unknown; variant?: unknown };
}

/**
 * A pass-through that hashes a blob and fails unless it matches `digest` and
 * its descriptor's `size`: more bytes than the descriptor declares fail at
 * once (a registry cannot make banger download or store more than the
 * manifest promised), fewer fail at the end as a truncated download.

/**
 * A fetched manifest document: checked against `expectDigest` when it was
 * fetched by digest, parsed, and its media type settled (from the document,
 * else the Content-Type, else its shape). Schema 1 and non-image artifacts are refused.
 */
export function parseManifest(
  ref: ImageRef,
  bytes: Buffer,
  contentTypeHeader: string | null,
  expectDigest: string | undefined,
  what: string,
): FetchedManifest {
  const name = formatReference(ref);
  const digest = sha256Digest(bytes);
  if (expectDigest !== undefined && digest !== expectDigest) {
    throw operationFailed(`${what} failed verification: it hashes to ${digest}, not ${expectDigest}`, {
      hint: 'the registry or a proxy served corrupt data; retry the pull',
    });
  }
  const body = parseJson(bytes, what);
  if (!isObject(body)) throw operationFailed(`${what} is not a JSON object`);
  const contentType = (contentTypeHeader ?? '').split(';')[0]?.trim() ?? '';
  let mediaType = typeof body.mediaType === 'string' && body.mediaType !== '' ? body.mediaType : contentType;
  if (!INDEX_TYPES.has(mediaType) && !MANIFEST_TYPES.has(mediaType) && !SCHEMA1_TYPES.has(mediaType)) {
    // Media type missing (OCI makes it optional) or generic: go by shape.
    if (body.schemaVersion === 1) mediaType = 'application/vnd.docker.distribution.manifest.v1+json';
    else if (Array.isArray(body.manifests)) mediaType = MEDIA_TYPES.ociIndex;
    else if (isObject(body.config) && Array.isArray(body.layers)) mediaType = MEDIA_TYPES.ociManifest;
  }
  if (SCHEMA1_TYPES.has(mediaType) || body.schemaVersion === 1) {
    throw badRequest(
      `${name} uses the obsolete Docker schema 1 manifest format, which banger does not support`,
      'push the image again with a current docker, buildah or skopeo',
    );
  }
  if (!INDEX_TYPES.has(mediaType) && !MANIFEST_TYPES.has(mediaType)) {
    throw badRequest(
      `${name} is not a container image: its manifest has media type ${JSON.stringify(mediaType || contentType)}`,
    );
  }
  return { body, mediaType, digest };
}

/** The linux/amd64 entry of an image index (one without a variant preferred). */
export function selectPlatform(ref: ImageRef, index: Record<string, unknown>): IndexEntry {
  const name = formatReference(ref);
  const raw = index.manifests;
  if (!Array.isArray(raw)) throw operationFailed(`${name}: image index has no manifests list`);
  const entries: IndexEntry[] = [];
  for (const m of raw) {
    if (!isObject(m) || typeof m.digest !== 'string' || !isSha256Digest(m.digest)) continue;
    const e: IndexEntry = {
      mediaType: typeof m.mediaType === 'string' ? m.mediaType : '',
      digest: m.digest,
      size: typeof m.size === 'number' ? m.size : -1,
    };
    if (isObject(m.platform)) e.platform = m.platform;
    entries.push(e);
  }
  const matching = entries.filter(
    (e) =>
      e.platform?.os === WANT_OS &&
      e.platform.architecture === WANT_ARCH &&
      (e.mediaType === '' || MANIFEST_TYPES.has(e.mediaType) || INDEX_TYPES.has(e.mediaType)),
  );
  const pick = matching.find((e) => e.platform?.variant === undefined) ?? matching[0];
  if (pick !== undefined) return pick;
  const offered = [
    ...new Set(
      entries
        .map((e) => e.platform)
        .filter(
          (p) =>
            p !== undefined && typeof p.os === 'string' && typeof p.architecture === 'string' && p.os !== 'unknown',
        )
        .map(
          (p) => `${String(p?.os)}/${String(p?.architecture)}${typeof p?.variant === 'string' ? `/${p.variant}` : ''}`,
        ),
    ),
  ];
  throw notFound(
    `${name} has no ${WANT_OS}/${WANT_ARCH} image${offered.length === 0 ? '' : `; it offers ${offered.join(', ')}`}`,
    `banger runs ${WANT_OS}/${WANT_ARCH} guests; pick an image built for that platform`,
  );
}

/** An image manifest's config and layer descriptors, checked (sha256 digests, sizes, media types banger can unpack). */
export function validateManifest(ref: ImageRef, fetched: FetchedManifest): ImageManifest {
  const name = formatReference(ref);
  const bad = (what: string): never => {
    throw operationFailed(`${name}: manifest ${fetched.digest} is malformed: ${what}`);
  };
  const descriptor = (x: unknown, where: string): Descriptor => {
    if (!isObject(x)) return bad(`${where} is not an object`);
    if (typeof x.mediaType !== 'string') return bad(`${where} has no mediaType`);
    if (typeof x.digest !== 'string') return bad(`${where} has no digest`);
    if (!isSha256Digest(x.digest)) {
      throw badRequest(`${name}: ${where} has digest ${JSON.stringify(x.digest)}; banger supports only sha256 digests`);
    }
    if (typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0)
      return bad(`${where} has no valid size`);
    return { mediaType: x.mediaType, digest: x.digest, size: x.size };
  };
  const body = fetched.body;
  const config = descriptor(body.config, 'config');
  if (!CONFIG_TYPES.has(config.mediaType)) {
    throw badRequest(`${name} is not a container image: its config has media type ${JSON.stringify(config.mediaType)}`);
  }
  if (!Array.isArray(body.layers)) return bad('layers is not a list');
  const layers = body.layers.map((l: unknown, i: number) => descriptor(l, `layers[${i}]`));
  layers.forEach((l, i) => {
    if (layerCompression(l.mediaType) === undefined) {
      throw badRequest(
        `${name}: layer ${i} (${l.digest}) has unsupported media type ${JSON.stringify(l.mediaType)}`,
        'banger can unpack tar layers that are uncompressed, gzip or zstd',
      );
    }
  });
  return { mediaType: fetched.mediaType, config, layers };
}

/** The config blob of `manifest`: checked against its digest, parsed, and refused unless it is a linux/amd64 layers config matching the layers. */
export function parseConfig(ref: ImageRef, manifest: ImageManifest, bytes: Buffer, what: string): ImageConfig {
  const name = formatReference(ref);
  const { digest } = manifest.config;
  const got = sha256Digest(bytes);
  if (got !== digest) {
    throw operationFailed(`blob ${digest} (${what}) failed verification: it hashes to ${got}`, {
      hint: 'the registry or a proxy served corrupt data; retry the pull',
    });
  }
  const body = parseJson(bytes, what);
  const bad = (why: string): never => {
    throw operationFailed(`${name}: image config ${digest} is malformed: ${why}`);
  };
  if (!isObject(body)) return bad('not a JSON object');
  const rootfs = body.rootfs;
  if (!isObject(rootfs)) return bad('no rootfs');
  if (rootfs.type !== 'layers') return bad(`rootfs.type is ${JSON.stringify(rootfs.type)}, not "layers"`);
  const diffIds = rootfs.diff_ids;
  if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === 'string' && isSha256Digest(d))) {
    return bad('rootfs.diff_ids is not a list of sha256 digests');
  }
  if (diffIds.length !== manifest.layers.length) {
    return bad(`it lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  }
  if (
    (typeof body.os === 'string' && body.os !== WANT_OS) ||
    (typeof body.architecture === 'string' && body.architecture !== WANT_ARCH)
  ) {
    throw badRequest(
      `${name} is a ${String(body.os ?? '?')}/${String(body.architecture ?? '?')} image; banger needs ${WANT_OS}/${WANT_ARCH}`,
      `banger runs ${WANT_OS}/${WANT_ARCH} guests; pick an image built for that platform`,
    );
  }
  return body as unknown as ImageConfig;
}

/** A registry document's bytes as JSON; `what` names it in the error. */
function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw operationFailed(`${what} is not valid JSON`);
  }
}
