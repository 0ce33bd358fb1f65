import { Readable, pipeline } from 'node:stream';
import {
  AppError,
  badRequest,
  cancelled,
  errorMessage,
  isAbortError,
  operationFailed,
  precondition,
} from '../errors.js';
import { HashingStream } from '../net/hashing.js';
import { bodyStream, describeNetworkError, fetchFollowing, networkCode, readLimited, TLS_CODE } from '../net/http.js';
import { hostPort, insecureHostSet, plainHttpAllowed, plainHttpRefused } from '../net/plain-http.js';
import { httpTransport, type HttpFetch } from '../net/transport.js';
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
import {
  INDEX_TYPES,
  MANIFEST_ACCEPT,
  MAX_CONFIG_BYTES,
  MAX_INDEX_DEPTH,
  MAX_MANIFEST_BYTES,
  parseConfig,
  parseManifest,
  selectPlatform,
  validateManifest,
  type FetchedManifest,
  type ImageConfig,
  type ImageManifest,
  type ResolvedImage,
} from './oci-manifest.js';
import { formatReference, isSha256Digest, type ImageRef } from './reference.js';
import { errorSummary, MAX_ERROR_BODY, statusError, statusText } from './registry-errors.js';

export { MEDIA_TYPES } from './oci-manifest.js';
export type { Descriptor, ImageConfig, ImageManifest, ResolvedImage } from './oci-manifest.js';

/*
 * A pull-only client for the OCI distribution API (and the Docker Registry
 * v2 API it grew from) on banger's HTTP transport (net/: proxies, redirect checks):
 *   GET /v2/<name>/manifests/<tag|digest>  image index / manifest list → linux/amd64 manifest
 *   GET /v2/<name>/blobs/<digest>          config and layers, possibly redirected to blob storage
 * Authentication: anonymous first; on 401 the WWW-Authenticate challenge is
 * answered with a Bearer token from the realm (Basic credentials from
 * config.json sent to the token service when present) or with Basic
 * credentials. Plain http only for loopback and insecureHosts, checked
 * before every request, including token realms and redirect targets.
 * Documents are parsed in oci-manifest.ts; error answers worded in registry-errors.ts.
 */

export interface RegistryClientOptions {
  /** host:port allowed over plain http besides loopback (config insecure_registries). */
  insecureHosts: readonly string[];
  /** Text of a docker config.json, for credentials. */
  dockerConfig?: string;
  userAgent?: string;
  signal?: AbortSignal;
  /** The HTTP transport (tests inject one); defaults to node:http without a proxy. */
  fetch?: HttpFetch;
}

const MAX_REDIRECTS = 10;
const LOGIN_HINT = 'log in with docker login or add credentials to ~/.docker/config.json';

/**
 * A HashingStream that fails unless the blob matches `digest` and its
 * descriptor's `size`: more bytes than the descriptor declares fail at once
 * (a registry cannot make banger download or store more than the manifest
 * promised), fewer fail at the end as a truncated download.
 */
function blobVerifier(digest: string, where: string, expectedBytes: number | undefined): HashingStream {
  return new HashingStream({
    ...(expectedBytes === undefined
      ? {}
      : {
          maxBytes: expectedBytes,
          tooBig: () =>
            operationFailed(
              `blob ${digest} from ${where} is larger than its descriptor's ${expectedBytes} bytes; download stopped`,
              {
                hint: 'the registry serves different content than the manifest describes; report it to the registry operator',
              },
            ),
        }),
    check: (hex, bytes) => {
      if (expectedBytes !== undefined && bytes < expectedBytes) {
        return operationFailed(
          `download of blob ${digest} from ${where} was truncated: got ${bytes} of ${expectedBytes} bytes`,
          { hint: 'the connection was cut; retry the pull' },
        );
      }
      const got = `sha256:${hex}`;
      if (got === digest) return undefined;
      return operationFailed(
        `blob ${digest} from ${where} failed verification: the ${bytes} bytes received hash to ${got}`,
        {
          hint: 'the registry or a proxy served corrupt data; retry, and report it to the registry operator if it persists',
        },
      );
    },
  });
}

export class RegistryClient {
  readonly #opts: RegistryClientOptions;
  readonly #fetch: HttpFetch;
  readonly #insecure: ReadonlySet<string>;
  /** Authorization header value per 'registry/repository', once authenticated. */
  readonly #auth = new Map<string, string>();

  constructor(opts: RegistryClientOptions) {
    this.#opts = opts;
    this.#fetch = opts.fetch ?? httpTransport();
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
      const entry = selectPlatform(ref, fetched.body);
      fetched = await this.#getManifest(ref, entry.digest, entry.digest);
    }
    const manifest = validateManifest(ref, fetched);
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
    const verifier = blobVerifier(digest, where, descriptorSize ?? served);
    pipeline(this.#bodyStream(res, digest, where), verifier, () => undefined);
    return verifier;
  }

  /* ---------- manifests and config ---------- */

  async #getManifest(ref: ImageRef, reference: string, expectDigest: string | undefined): Promise<FetchedManifest> {
    const what = `manifest ${reference} of ${ref.registry}/${ref.repository}`;
    const res = await this.#request(ref, `manifests/${reference}`, {
      accept: MANIFEST_ACCEPT,
      what: `manifest ${reference}`,
      blob: false,
    });
    const bytes = await this.#read(res, MAX_MANIFEST_BYTES, what);
    return parseManifest(ref, bytes, res.headers.get('content-type'), expectDigest, what);
  }

  async #getConfig(ref: ImageRef, manifest: ImageManifest): Promise<ImageConfig> {
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
    return parseConfig(ref, manifest, bytes, what);
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

  /** One GET with redirects followed by hand (net/http.ts): every hop passes #checkUrl first. */
  async #fetchFollowing(
    start: URL,
    headers: Record<string, string>,
    registry: string,
    purpose: string,
  ): Promise<Response> {
    const { res } = await fetchFollowing(start, {
      fetch: this.#fetch,
      headers,
      signal: this.#opts.signal,
      maxRedirects: MAX_REDIRECTS,
      checkHop: (u) => this.#checkUrl(u, registry, purpose),
      networkError: (err, current) => {
        const code = networkCode(err);
        const target =
          current.host === registry ? `registry ${registry}` : `${current.host} (${purpose} for registry ${registry})`;
        const tls = code !== undefined && TLS_CODE.test(code);
        return operationFailed(`cannot reach ${target}: ${describeNetworkError(err)}`, {
          cause: err,
          hint: tls
            ? `if ${current.host} serves plain http, list it in insecure_registries`
            : 'check the registry address, that it is running and that this host can reach it (and HTTPS_PROXY/NO_PROXY, behind a proxy)',
        });
      },
      redirectError: (why) =>
        operationFailed(
          why.startsWith('more than')
            ? `registry ${registry}: ${why} for ${purpose}`
            : `registry ${registry} redirected ${purpose} to an invalid URL: ${why}`,
        ),
    });
    return res;
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
      throw await statusError(ref, res, o.what, o.blob, {
        creds: this.#credentials(registry),
        sentBasic: this.#auth.get(key)?.startsWith('Basic ') === true,
        loginHint: this.#loginHint(registry),
      });
    }
  }

  async #read(res: Response, max: number, what: string): Promise<Buffer> {
    try {
      return await readLimited(res, max, () =>
        operationFailed(`${what} is larger than ${max} bytes; refusing to read it`),
      );
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (this.#opts.signal?.aborted || isAbortError(err)) throw cancelled();
      throw operationFailed(`reading ${what} failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  /** The body as a Node stream; a cut connection fails it with an operationFailed naming the blob. */
  #bodyStream(res: Response, digest: string, where: string): Readable {
    const cut = (got: number, err?: unknown): AppError =>
      operationFailed(
        `download of blob ${digest} from ${where} failed after ${got} bytes${err === undefined ? ': the connection was closed' : `: ${errorMessage(err)}`}`,
        { ...(err === undefined ? {} : { cause: err }), hint: 'the connection was cut; retry the pull' },
      );
    return bodyStream(res, {
      size: undefined,
      signal: this.#opts.signal,
      truncated: (got) => cut(got),
      failed: (err, got) => cut(got, err),
    });
  }
}
