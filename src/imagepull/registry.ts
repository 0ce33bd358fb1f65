import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { AppError, badRequest, notFound, operationFailed, precondition } from '../errors.js';
import { hostPort, insecureHostSet, plainHttpAllowed, plainHttpRefused } from '../net/plain-http.js';
import {
  basicAuthorization,
  bearerAuthorization,
  credentialHelperFor,
  credentialsFor,
  parseTokenResponse,
  parseWwwAuthenticate,
  pickChallenge,
  tokenUrl,
  type Challenge,
  type Credentials,
} from './auth.js';
import { layerCompression } from './layers.js';
import { formatReference, isSha256Digest, type ImageRef } from './reference.js';

/*
 * A pull-only client for the OCI distribution API (and the Docker Registry
 * v2 API it grew from) on Node's global fetch:
 *   GET /v2/<name>/manifests/<tag|digest>  image index / manifest list → linux/amd64 manifest
 *   GET /v2/<name>/blobs/<digest>          config and layers, possibly redirected to blob storage
 * Authentication: anonymous first; on 401 the WWW-Authenticate challenge is
 * answered with a Bearer token from the realm (Basic credentials from
 * config.json sent to the token service when present) or with Basic
 * credentials. Plain http only for loopback and insecureHosts, checked
 * before every request, including token realms and redirect targets.
 */

export interface RegistryClientOptions {
  /** host:port allowed over plain http besides loopback (config insecure_registries). */
  insecureHosts: readonly string[];
  /** Text of a docker config.json, for credentials. */
  dockerConfig?: string;
  userAgent?: string;
  signal?: AbortSignal;
  /** fetch implementation (tests); defaults to the global fetch. */
  fetch?: typeof globalThis.fetch;
}

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

const INDEX_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList]);
const MANIFEST_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
const CONFIG_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociConfig, MEDIA_TYPES.dockerConfig]);
const SCHEMA1_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);

/** Manifest media types this client understands, most specific first. */
const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
].join(', ');

const WANT_OS = 'linux';
const WANT_ARCH = 'amd64';
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
const MAX_ERROR_BODY = 64 * 1024;
const MAX_REDIRECTS = 10;
const MAX_INDEX_DEPTH = 3;

const LOGIN_HINT = 'log in with docker login or add credentials to ~/.docker/config.json';

const cancelled = (): AppError => new AppError('cancelled', 'operation cancelled');
const isAbortError = (err: unknown): boolean =>
  err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');

/* ---------- helpers ---------- */

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The first errno-style code in an error's cause chain (fetch wraps socket errors as TypeError('fetch failed', { cause })). */
function networkCode(err: unknown): string | undefined {
  let cur: unknown = err;
  for (let depth = 0; depth < 5 && cur !== undefined && cur !== null; depth++) {
    const e = cur as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof e.code === 'string') return e.code;
    if (Array.isArray(e.errors) && e.errors.length > 0) {
      const inner = networkCode(e.errors[0]);
      if (inner !== undefined) return inner;
    }
    cur = e.cause;
  }
  return undefined;
}

function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return cause !== undefined && cause !== '' && cause !== err.message ? `${err.message}: ${cause}` : err.message;
}

const TLS_CODE =
  /^(?:ERR_SSL_|ERR_TLS_|CERT_|EPROTO$|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|ERR_CERT|HOSTNAME_MISMATCH$)/;

function describeNetworkError(code: string | undefined): string | undefined {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name does not resolve';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connection timed out';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      return code !== undefined && TLS_CODE.test(code) ? `TLS handshake failed (${code})` : undefined;
  }
}

function statusText(res: Response): string {
  return `${res.status}${res.statusText === '' ? '' : ` ${res.statusText}`}`;
}

/** "CODE: message; CODE: message" from a distribution-spec error body, or ''. */
async function errorSummary(res: Response): Promise<string> {
  let text: string;
  try {
    const bytes = await readLimited(res, MAX_ERROR_BODY, undefined);
    text = bytes.toString('utf8');
  } catch {
    return '';
  }
  try {
    const body = JSON.parse(text) as { errors?: unknown; details?: unknown };
    if (Array.isArray(body.errors)) {
      return body.errors
        .map((e: unknown) => {
          const o = (e ?? {}) as { code?: unknown; message?: unknown };
          return [o.code, o.message].filter((x) => typeof x === 'string' && x !== '').join(': ');
        })
        .filter((s) => s !== '')
        .join('; ');
    }
  } catch {
    /* not JSON */
  }
  return '';
}

/** The whole body, refusing more than `max` bytes. `what` names the document in the error (undefined: plain Error, for internal use). */
async function readLimited(res: Response, max: number, what: string | undefined): Promise<Buffer> {
  const tooBig = (): Error =>
    what === undefined
      ? new Error('body too large')
      : operationFailed(`${what} is larger than ${max} bytes; refusing to read it`);
  const declared = Number(res.headers.get('content-length') ?? 'NaN');
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw tooBig();
  }
  if (res.body === null) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const step = await reader.read();
      if (step.done) break;
      total += step.value.byteLength;
      if (total > max) throw tooBig();
      chunks.push(Buffer.from(step.value.buffer, step.value.byteOffset, step.value.byteLength));
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

interface FetchedManifest {
  body: Record<string, unknown>;
  mediaType: string;
  digest: string;
}

interface IndexEntry {
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
 */
class BlobVerifier extends Transform {
  readonly #hash: Hash = createHash('sha256');
  readonly #digest: string;
  readonly #where: string;
  readonly #expectedBytes: number | undefined;
  #bytes = 0;

  constructor(digest: string, where: string, expectedBytes: number | undefined) {
    super();
    this.#digest = digest;
    this.#where = where;
    this.#expectedBytes = expectedBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#expectedBytes !== undefined && this.#bytes > this.#expectedBytes) {
      callback(
        operationFailed(
          `blob ${this.#digest} from ${this.#where} is larger than its descriptor's ${this.#expectedBytes} bytes; download stopped`,
          {
            hint: 'the registry serves different content than the manifest describes; report it to the registry operator',
          },
        ),
      );
      return;
    }
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#expectedBytes !== undefined && this.#bytes < this.#expectedBytes) {
      callback(
        operationFailed(
          `download of blob ${this.#digest} from ${this.#where} was truncated: got ${this.#bytes} of ${this.#expectedBytes} bytes`,
          {
            hint: 'the connection was cut; retry the pull',
          },
        ),
      );
      return;
    }
    const got = `sha256:${this.#hash.digest('hex')}`;
    if (got !== this.#digest) {
      callback(
        operationFailed(
          `blob ${this.#digest} from ${this.#where} failed verification: the ${this.#bytes} bytes received hash to ${got}`,
          {
            hint: 'the registry or a proxy served corrupt data; retry, and report it to the registry operator if it persists',
          },
        ),
      );
      return;
    }
    callback();
  }
}

export class RegistryClient {
  readonly #opts: RegistryClientOptions;
  readonly #fetch: typeof globalThis.fetch;
  readonly #insecure: ReadonlySet<string>;
  /** Authorization header value per 'registry/repository', once authenticated. */
  readonly #auth = new Map<string, string>();

  constructor(opts: RegistryClientOptions) {
    this.#opts = opts;
    this.#fetch = opts.fetch ?? globalThis.fetch;
    this.#insecure = insecureHostSet(opts.insecureHosts);
  }

  /**
   * Resolves ref → the linux/amd64 image manifest (following an image index
   * or manifest list), with its digest and the parsed config blob. Manifests
   * fetched by digest and the config are checked against their digests.
   */
  async resolve(ref: ImageRef): Promise<ResolvedImage> {
    const name = formatReference(ref);
    let fetched = await this.#getManifest(ref, ref.digest ?? ref.tag ?? 'latest', ref.digest);
    for (let depth = 0; INDEX_TYPES.has(fetched.mediaType); depth++) {
      if (depth >= MAX_INDEX_DEPTH)
        throw operationFailed(`${name}: image indexes nest deeper than ${MAX_INDEX_DEPTH} levels`);
      const entry = this.#selectPlatform(ref, fetched.body);
      fetched = await this.#getManifest(ref, entry.digest, entry.digest);
    }
    const manifest = this.#validateManifest(ref, fetched);
    const config = await this.#getConfig(ref, manifest);
    return { manifest, manifestDigest: fetched.digest, config, configDigest: manifest.config.digest };
  }

  /**
   * Streams a blob, verifying its sha256 while streaming: the stream fails at
   * its end with an operationFailed naming the digest when the content does
   * not match. With `descriptorSize` (the manifest's size for the blob) the
   * download never reads past that many bytes. Redirects to blob storage are followed; Authorization is
   * dropped once a redirect leaves the registry's origin.
   */
  async blob(ref: ImageRef, digest: string, descriptorSize?: number): Promise<Readable> {
    if (!isSha256Digest(digest)) {
      throw badRequest(`invalid blob digest ${JSON.stringify(digest)}: expected sha256:<64 lowercase hex digits>`);
    }
    const where = `${ref.registry}/${ref.repository}`;
    const res = await this.#request(ref, `blobs/${digest}`, { accept: '*/*', what: `blob ${digest}`, blob: true });
    const declared = res.headers.get('content-length');
    const served =
      declared !== null && /^\d+$/.test(declared.trim()) && res.headers.get('content-encoding') === null
        ? Number(declared.trim())
        : undefined;
    if (descriptorSize !== undefined && served !== undefined && served > descriptorSize) {
      await res.body?.cancel().catch(() => undefined);
      throw operationFailed(
        `blob ${digest} from ${where} is ${served} bytes but its descriptor says ${descriptorSize}; refusing to download it`,
        {
          hint: 'the registry serves different content than the manifest describes; report it to the registry operator',
        },
      );
    }
    const verifier = new BlobVerifier(digest, where, descriptorSize ?? served);
    pipeline(this.#bodyStream(res, digest, where), verifier, () => undefined);
    return verifier;
  }

  /* ---------- manifests and config ---------- */

  async #getManifest(ref: ImageRef, reference: string, expectDigest: string | undefined): Promise<FetchedManifest> {
    const name = formatReference(ref);
    const what = `manifest ${reference} of ${ref.registry}/${ref.repository}`;
    const res = await this.#request(ref, `manifests/${reference}`, {
      accept: MANIFEST_ACCEPT,
      what: `manifest ${reference}`,
      blob: false,
    });
    const bytes = await this.#read(res, MAX_MANIFEST_BYTES, what);
    const digest = sha256(bytes);
    if (expectDigest !== undefined && digest !== expectDigest) {
      throw operationFailed(`${what} failed verification: it hashes to ${digest}, not ${expectDigest}`, {
        hint: 'the registry or a proxy served corrupt data; retry the pull',
      });
    }
    let body: unknown;
    try {
      body = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw operationFailed(`${what} is not valid JSON`);
    }
    if (!isObject(body)) throw operationFailed(`${what} is not a JSON object`);
    const contentType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
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

  #selectPlatform(ref: ImageRef, index: Record<string, unknown>): IndexEntry {
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
            (p) =>
              `${String(p?.os)}/${String(p?.architecture)}${typeof p?.variant === 'string' ? `/${p.variant}` : ''}`,
          ),
      ),
    ];
    throw notFound(
      `${name} has no ${WANT_OS}/${WANT_ARCH} image${offered.length === 0 ? '' : `; it offers ${offered.join(', ')}`}`,
      `banger runs ${WANT_OS}/${WANT_ARCH} guests; pick an image built for that platform`,
    );
  }

  #validateManifest(ref: ImageRef, fetched: FetchedManifest): ImageManifest {
    const name = formatReference(ref);
    const bad = (what: string): never => {
      throw operationFailed(`${name}: manifest ${fetched.digest} is malformed: ${what}`);
    };
    const descriptor = (x: unknown, where: string): Descriptor => {
      if (!isObject(x)) return bad(`${where} is not an object`);
      if (typeof x.mediaType !== 'string') return bad(`${where} has no mediaType`);
      if (typeof x.digest !== 'string') return bad(`${where} has no digest`);
      if (!isSha256Digest(x.digest)) {
        throw badRequest(
          `${name}: ${where} has digest ${JSON.stringify(x.digest)}; banger supports only sha256 digests`,
        );
      }
      if (typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0)
        return bad(`${where} has no valid size`);
      return { mediaType: x.mediaType, digest: x.digest, size: x.size };
    };
    const body = fetched.body;
    const config = descriptor(body.config, 'config');
    if (!CONFIG_TYPES.has(config.mediaType)) {
      throw badRequest(
        `${name} is not a container image: its config has media type ${JSON.stringify(config.mediaType)}`,
      );
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

  async #getConfig(ref: ImageRef, manifest: ImageManifest): Promise<ImageConfig> {
    const name = formatReference(ref);
    const { digest, size } = manifest.config;
    const what = `config blob ${digest} of ${ref.registry}/${ref.repository}`;
    if (size > MAX_CONFIG_BYTES)
      throw operationFailed(`${what} is larger than ${MAX_CONFIG_BYTES} bytes; refusing to read it`);
    const res = await this.#request(ref, `blobs/${digest}`, {
      accept: `${manifest.config.mediaType}, */*`,
      what: `config blob ${digest}`,
      blob: true,
    });
    const bytes = await this.#read(res, MAX_CONFIG_BYTES, what);
    const got = sha256(bytes);
    if (got !== digest) {
      throw operationFailed(`blob ${digest} (${what}) failed verification: it hashes to ${got}`, {
        hint: 'the registry or a proxy served corrupt data; retry the pull',
      });
    }
    let body: unknown;
    try {
      body = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw operationFailed(`${what} is not valid JSON`);
    }
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

  /* ---------- HTTP ---------- */

  /** The registry's base URL: http for loopback and insecure hosts, https otherwise. */
  #baseUrl(registry: string): URL {
    const plain = new URL(`http://${registry}/`);
    return this.#httpAllowed(plain) ? plain : new URL(`https://${registry}/`);
  }

  #httpAllowed(u: URL): boolean {
    return plainHttpAllowed(u, this.#insecure);
  }

  /** Throws (before anything is sent) unless the URL is https, or http to a loopback or insecure host. */
  #checkUrl(u: URL, registry: string, purpose: string): void {
    if (u.protocol === 'https:') return;
    if (u.protocol === 'http:') {
      if (this.#httpAllowed(u)) return;
      throw plainHttpRefused(
        `refusing plain http to ${hostPort(u)} (${purpose} for registry ${registry}): ${u.origin}${u.pathname}`,
        u,
      );
    }
    throw badRequest(
      `refusing ${u.protocol} URL ${u.href} (${purpose} for registry ${registry}); only http and https are used`,
    );
  }

  /**
   * One GET with redirects followed by hand: every hop passes #checkUrl
   * first; the Authorization header goes only to the starting origin.
   */
  async #fetchFollowing(
    start: URL,
    headers: Record<string, string>,
    registry: string,
    purpose: string,
  ): Promise<Response> {
    const signal = this.#opts.signal;
    let current = start;
    let sameOrigin = true;
    for (let hop = 0; ; hop++) {
      if (signal?.aborted) throw cancelled();
      this.#checkUrl(current, registry, purpose);
      sameOrigin = sameOrigin && current.origin === start.origin;
      const h: Record<string, string> = { ...headers };
      if (!sameOrigin) delete h.authorization;
      let res: Response;
      try {
        res = await this.#fetch(current, {
          method: 'GET',
          headers: h,
          redirect: 'manual',
          ...(signal === undefined ? {} : { signal }),
        });
      } catch (err) {
        if (signal?.aborted || isAbortError(err)) throw cancelled();
        const code = networkCode(err);
        const why = describeNetworkError(code) ?? errorMessage(err);
        const target =
          current.host === registry ? `registry ${registry}` : `${current.host} (${purpose} for registry ${registry})`;
        const tls = code !== undefined && TLS_CODE.test(code);
        throw operationFailed(`cannot reach ${target}: ${why}`, {
          cause: err,
          hint: tls
            ? `if ${current.host} serves plain http, list it in insecure_registries`
            : 'check the registry address, that it is running and that this host can reach it',
        });
      }
      const location = res.headers.get('location');
      if (res.status < 300 || res.status > 399 || location === null) return res;
      await res.body?.cancel().catch(() => undefined);
      if (hop >= MAX_REDIRECTS)
        throw operationFailed(`registry ${registry}: more than ${MAX_REDIRECTS} redirects for ${purpose}`);
      try {
        current = new URL(location, current);
      } catch {
        throw operationFailed(
          `registry ${registry} redirected ${purpose} to an invalid URL ${JSON.stringify(location)}`,
        );
      }
    }
  }

  #credentials(registry: string): Credentials | undefined {
    return this.#opts.dockerConfig === undefined ? undefined : credentialsFor(this.#opts.dockerConfig, registry);
  }

  #loginHint(registry: string): string {
    const helper =
      this.#opts.dockerConfig === undefined ? undefined : credentialHelperFor(this.#opts.dockerConfig, registry);
    return helper === undefined
      ? LOGIN_HINT
      : `${LOGIN_HINT}; your config.json keeps credentials in docker-credential-${helper}, which banger does not read, so add an "auths" entry for ${registry}`;
  }

  /** Answers a 401 challenge: stores the Authorization value for this repository. */
  async #authenticate(ref: ImageRef, header: string | null, what: string): Promise<void> {
    const { registry, repository } = ref;
    const challenge = pickChallenge(header === null ? [] : parseWwwAuthenticate(header));
    if (challenge === undefined) {
      throw operationFailed(
        `registry ${registry} refused ${what} of ${repository} (401 Unauthorized) without a usable WWW-Authenticate challenge${header === null ? '' : `: ${header}`}`,
      );
    }
    const creds = this.#credentials(registry);
    if (challenge.scheme === 'basic') {
      if (creds === undefined)
        throw precondition(`registry ${registry} requires authentication`, this.#loginHint(registry));
      this.#auth.set(`${registry}/${repository}`, basicAuthorization(creds));
      return;
    }
    const token = await this.#fetchToken(ref, challenge, creds);
    this.#auth.set(`${registry}/${repository}`, bearerAuthorization(token));
  }

  async #fetchToken(
    ref: ImageRef,
    challenge: Extract<Challenge, { scheme: 'bearer' }>,
    creds: Credentials | undefined,
  ): Promise<string> {
    const { registry, repository } = ref;
    const url = tokenUrl(challenge, repository);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.#userAgent() };
    if (creds !== undefined) headers.authorization = basicAuthorization(creds);
    const res = await this.#fetchFollowing(url, headers, registry, 'token service');
    if (res.status === 401 || res.status === 403) {
      const summary = await errorSummary(res);
      const detail = summary === '' ? '' : `: ${summary}`;
      if (creds !== undefined) {
        throw precondition(
          `registry ${registry} rejected the credentials of ${creds.username} for ${repository} (token service ${url.host}: ${statusText(res)}${detail})`,
          `check the username and password for ${registry} in ~/.docker/config.json, or log in again with docker login`,
        );
      }
      throw precondition(
        `registry ${registry} requires authentication for ${repository} (token service ${url.host}: ${statusText(res)}${detail})`,
        this.#loginHint(registry),
      );
    }
    if (!res.ok) {
      const summary = await errorSummary(res);
      throw operationFailed(
        `token service ${url.host} for registry ${registry} answered ${statusText(res)} for ${repository}${summary === '' ? '' : `: ${summary}`}`,
        {
          hint: 'retry later; check the registry status if it persists',
        },
      );
    }
    const bytes = await this.#read(res, MAX_ERROR_BODY, `token response from ${url.host}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const token = parseTokenResponse(parsed);
    if (token === undefined)
      throw operationFailed(`token service ${url.host} for registry ${registry} returned no token for ${repository}`);
    return token.token;
  }

  #userAgent(): string {
    return this.#opts.userAgent ?? 'banger';
  }

  /**
   * GET /v2/<repository>/<path> with authentication as needed; returns a 2xx
   * response or throws an AppError naming registry, repository and status.
   */
  async #request(ref: ImageRef, path: string, o: { accept: string; what: string; blob: boolean }): Promise<Response> {
    const { registry, repository } = ref;
    const url = new URL(`v2/${repository}/${path}`, this.#baseUrl(registry));
    const key = `${registry}/${repository}`;
    let answered = false;
    for (;;) {
      const headers: Record<string, string> = { accept: o.accept, 'user-agent': this.#userAgent() };
      if (o.blob) headers['accept-encoding'] = 'identity';
      const auth = this.#auth.get(key);
      if (auth !== undefined) headers.authorization = auth;
      const res = await this.#fetchFollowing(url, headers, registry, o.what);
      if (res.status === 401 && !answered) {
        const challenge = res.headers.get('www-authenticate');
        await res.body?.cancel().catch(() => undefined);
        await this.#authenticate(ref, challenge, o.what);
        answered = true;
        continue;
      }
      if (res.ok) return res;
      throw await this.#statusError(ref, res, o.what, o.blob);
    }
  }

  async #statusError(ref: ImageRef, res: Response, what: string, blob: boolean): Promise<AppError> {
    const { registry, repository } = ref;
    const summary = await errorSummary(res);
    const detail = summary === '' ? '' : `: ${summary}`;
    const status = statusText(res);
    switch (res.status) {
      case 401:
      case 403: {
        const creds = this.#credentials(registry);
        if (
          res.status === 401 &&
          creds !== undefined &&
          this.#auth.get(`${registry}/${repository}`)?.startsWith('Basic ') === true
        ) {
          return precondition(
            `registry ${registry} rejected the credentials of ${creds.username} for ${repository} (${status})${detail}`,
            `check the username and password for ${registry} in ~/.docker/config.json, or log in again with docker login`,
          );
        }
        return precondition(
          `registry ${registry} denied access to ${repository} (${status}) for ${what}${detail}`,
          creds === undefined
            ? `the repository may not exist or may be private; check the name, or ${this.#loginHint(registry)}`
            : `check the repository name and that ${creds.username} may pull it`,
        );
      }
      case 404:
        return blob
          ? notFound(
              `registry ${registry} has no ${what} in ${repository} (${status})${detail}`,
              'the image is incomplete on the registry; push it again',
            )
          : notFound(
              `registry ${registry} has no ${what} in ${repository} (${status})${detail}`,
              'check the repository name and tag',
            );
      case 429:
        return operationFailed(
          `registry ${registry} is rate-limiting requests for ${repository} (${status})${detail}`,
          {
            hint: 'wait and retry; logging in (docker login) raises the limit on Docker Hub',
          },
        );
      default:
        return operationFailed(`registry ${registry} answered ${status} for ${what} of ${repository}${detail}`, {
          hint: res.status >= 500 ? 'the registry has a problem; retry later' : 'check the image reference',
        });
    }
  }

  async #read(res: Response, max: number, what: string): Promise<Buffer> {
    try {
      return await readLimited(res, max, what);
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (this.#opts.signal?.aborted || isAbortError(err)) throw cancelled();
      throw operationFailed(`reading ${what} failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  /** The body as a Node stream; a cut connection fails it with an operationFailed naming the blob. */
  #bodyStream(res: Response, digest: string, where: string): Readable {
    const body = res.body;
    if (body === null) return Readable.from([], { objectMode: false });
    const signal = this.#opts.signal;
    const reader = body.getReader();
    async function* chunks(): AsyncGenerator<Buffer> {
      let got = 0;
      try {
        for (;;) {
          let step: ReadableStreamReadResult<Uint8Array>;
          try {
            step = await reader.read();
          } catch (err) {
            if (signal?.aborted || isAbortError(err)) throw cancelled();
            throw operationFailed(
              `download of blob ${digest} from ${where} failed after ${got} bytes: ${errorMessage(err)}`,
              {
                cause: err,
                hint: 'the connection was cut; retry the pull',
              },
            );
          }
          if (step.done) return;
          got += step.value.byteLength;
          yield Buffer.from(step.value.buffer, step.value.byteOffset, step.value.byteLength);
        }
      } finally {
        await reader.cancel().catch(() => undefined);
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }
}
