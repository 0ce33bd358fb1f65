import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { compress as zstdCompress } from 'zstd-napi';

/*
 * An in-process fake of the OCI distribution API on 127.0.0.1:<random port>,
 * just enough for pull tests: GET /v2/, manifests by tag or digest (with
 * Accept negotiation), blobs (optionally redirected to a second "storage"
 * server), and anonymous / bearer-token / basic authentication.
 */

export type AuthMode = 'anonymous' | 'bearer' | 'basic';
export type Compression = 'gzip' | 'zstd' | 'none';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';

export const sha256 = (b: Uint8Array | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A tar archive of regular files of `mode` (and directories for names ending in '/'). */
export async function tarOf(files: Record<string, string>, mode = 0o644): Promise<Buffer> {
  const p = pack();
  for (const [name, body] of Object.entries(files)) {
    if (name.endsWith('/')) p.entry({ name, type: 'directory', mode: 0o755, mtime: new Date(0) });
    else p.entry({ name, mode, mtime: new Date(0) }, body);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export function compress(tar: Buffer, how: Compression): Buffer {
  if (how === 'gzip') return gzipSync(tar);
  if (how === 'zstd') return zstdCompress(tar);
  return tar;
}

export function layerMediaType(how: Compression, flavor: 'oci' | 'docker'): string {
  if (flavor === 'docker' && how === 'gzip') return 'application/vnd.docker.image.rootfs.diff.tar.gzip';
  return how === 'none' ? 'application/vnd.oci.image.layer.v1.tar' : `application/vnd.oci.image.layer.v1.tar+${how}`;
}

export interface LayerSpec {
  files: Record<string, string>;
  compression: Compression;
}

export interface PushedLayer {
  digest: string;
  diffId: string;
  mediaType: string;
  size: number;
  tar: Buffer;
  blob: Buffer;
}

export interface PushedImage {
  manifestDigest: string;
  configDigest: string;
  layers: PushedLayer[];
  manifest: Record<string, unknown>;
  config: Record<string, unknown>;
}

export interface ImageSpec {
  layers: LayerSpec[];
  flavor?: 'oci' | 'docker';
  os?: string;
  architecture?: string;
  /** Replace the diff_ids written into the config (to fake a mismatch). */
  diffIds?: string[];
  env?: string[];
  /** More keys of the image config's `config` (WorkingDir, User, Entrypoint, …). */
  runtime?: Record<string, unknown>;
}

export interface FakeRegistryOptions {
  auth?: AuthMode;
  /** Credentials the registry (basic) or token service (bearer) accepts. */
  username?: string;
  password?: string;
  /** bearer: refuse anonymous token requests (401), as for a private repository. */
  tokenRequiresLogin?: boolean;
  /** bearer: name of the token field in the token response. */
  tokenField?: 'token' | 'access_token';
  /** bearer: override the realm advertised in WWW-Authenticate. */
  realm?: string;
  /** Redirect blob GETs with 307: to the second (storage) server when true, or to this URL prefix. */
  redirectBlobs?: boolean | string;
}

export interface LoggedRequest {
  server: 'registry' | 'storage';
  method: string;
  path: string;
  authorization: string | undefined;
  accept: string | undefined;
}

interface StoredManifest {
  body: Buffer;
  mediaType: string;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

export class FakeRegistry {
  readonly opts: FakeRegistryOptions;
  readonly blobs = new Map<string, Buffer>();
  /** repository → reference (tag or digest) → manifest */
  readonly manifests = new Map<string, Map<string, StoredManifest>>();
  /** Blobs served with their last byte flipped. */
  readonly corrupt = new Set<string>();
  /** Blobs served with this many extra bytes appended; `declared: false` sends them chunked, without content-length. */
  readonly padded = new Map<string, { extra: number; declared: boolean }>();
  readonly log: LoggedRequest[] = [];
  readonly issuedTokens = new Set<string>();
  /** Delay (ms) before answering blob requests, so concurrent requests overlap. */
  blobDelayMs = 0;
  /** bearer: tokens issued from now on are refused at once, as if they expired on issue. */
  tokensExpireAtOnce = false;
  host = '';
  storageHost = '';
  #server: Server | undefined;
  #storage: Server | undefined;
  #tokenCount = 0;

  private constructor(opts: FakeRegistryOptions) {
    this.opts = opts;
  }

  static async start(opts: FakeRegistryOptions = {}): Promise<FakeRegistry> {
    const r = new FakeRegistry(opts);
    r.#server = createServer((req, res) => r.#handle(req, res));
    r.#storage = createServer((req, res) => r.#handleStorage(req, res));
    r.host = `127.0.0.1:${await listen(r.#server)}`;
    r.storageHost = `127.0.0.1:${await listen(r.#storage)}`;
    return r;
  }

  async stop(): Promise<void> {
    if (this.#server !== undefined) await close(this.#server);
    if (this.#storage !== undefined) await close(this.#storage);
  }

  /** bearer: every token issued so far expires now (the registry answers 401 to it). */
  expireTokens(): void {
    this.issuedTokens.clear();
  }

  requests(filter: (r: LoggedRequest) => boolean = () => true): LoggedRequest[] {
    return this.log.filter(filter);
  }

  addBlob(data: Buffer): string {
    const d = sha256(data);
    this.blobs.set(d, data);
    return d;
  }

  addManifest(repo: string, tag: string | undefined, manifest: unknown, mediaType: string): string {
    const body = Buffer.from(JSON.stringify(manifest));
    const d = sha256(body);
    let m = this.manifests.get(repo);
    if (m === undefined) {
      m = new Map();
      this.manifests.set(repo, m);
    }
    m.set(d, { body, mediaType });
    if (tag !== undefined) m.set(tag, { body, mediaType });
    return d;
  }

  async pushImage(repo: string, tag: string | undefined, spec: ImageSpec): Promise<PushedImage> {
    const flavor = spec.flavor ?? 'oci';
    const layers: PushedLayer[] = [];
    for (const l of spec.layers) {
      const tar = await tarOf(l.files);
      const blob = compress(tar, l.compression);
      layers.push({
        digest: this.addBlob(blob),
        diffId: sha256(tar),
        mediaType: layerMediaType(l.compression, flavor),
        size: blob.length,
        tar,
        blob,
      });
    }
    const config: Record<string, unknown> = {
      architecture: spec.architecture ?? 'amd64',
      os: spec.os ?? 'linux',
      config: { Env: spec.env ?? ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], ...spec.runtime },
      rootfs: { type: 'layers', diff_ids: spec.diffIds ?? layers.map((l) => l.diffId) },
    };
    const configBlob = Buffer.from(JSON.stringify(config));
    const configDigest = this.addBlob(configBlob);
    const manifestType = flavor === 'oci' ? OCI_MANIFEST : DOCKER_MANIFEST;
    const manifest: Record<string, unknown> = {
      schemaVersion: 2,
      mediaType: manifestType,
      config: {
        mediaType: flavor === 'oci' ? OCI_CONFIG : DOCKER_CONFIG,
        digest: configDigest,
        size: configBlob.length,
      },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    };
    const manifestDigest = this.addManifest(repo, tag, manifest, manifestType);
    return { manifestDigest, configDigest, layers, manifest, config };
  }

  /** An index (OCI) or manifest list (docker) under `tag` pointing at manifests already in `repo`. */
  pushIndex(
    repo: string,
    tag: string,
    entries: { digest: string; os: string; architecture: string; variant?: string }[],
    flavor: 'oci' | 'docker' = 'oci',
  ): string {
    const m = this.manifests.get(repo);
    const mediaType = flavor === 'oci' ? OCI_INDEX : DOCKER_LIST;
    const index = {
      schemaVersion: 2,
      mediaType,
      manifests: entries.map((e) => {
        const stored = m?.get(e.digest);
        return {
          mediaType: stored?.mediaType ?? OCI_MANIFEST,
          digest: e.digest,
          size: stored?.body.length ?? 0,
          platform: {
            os: e.os,
            architecture: e.architecture,
            ...(e.variant === undefined ? {} : { variant: e.variant }),
          },
        };
      }),
    };
    return this.addManifest(repo, tag, index, mediaType);
  }

  #challenge(repo: string | undefined): string {
    if (this.opts.auth === 'basic') return 'Basic realm="fake-registry"';
    const realm = this.opts.realm ?? `http://${this.host}/token`;
    const scope = repo === undefined ? '' : `,scope="repository:${repo}:pull"`;
    return `Bearer realm="${realm}",service="fake-registry"${scope}`;
  }

  #basicOk(header: string | undefined): boolean {
    if (header === undefined || !header.startsWith('Basic ')) return false;
    const decoded = Buffer.from(header.slice('Basic '.length), 'base64').toString('utf8');
    return decoded === `${this.opts.username ?? ''}:${this.opts.password ?? ''}`;
  }

  #authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization;
    switch (this.opts.auth ?? 'anonymous') {
      case 'anonymous':
        return true;
      case 'basic':
        return this.#basicOk(h);
      case 'bearer':
        return h !== undefined && h.startsWith('Bearer ') && this.issuedTokens.has(h.slice('Bearer '.length));
    }
  }

  #error(
    res: ServerResponse,
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ errors: [{ code, message }] }));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', `http://${this.host}`);
    this.log.push({
      server: 'registry',
      method: req.method ?? '',
      path: url.pathname + url.search,
      authorization: req.headers.authorization,
      accept: req.headers.accept,
    });
    if (url.pathname === '/token') {
      this.#token(url, req, res);
      return;
    }
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      if (!this.#authorized(req)) {
        this.#error(res, 401, 'UNAUTHORIZED', 'authentication required', {
          'www-authenticate': this.#challenge(undefined),
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (m === null) {
      this.#error(res, 404, 'NOT_FOUND', 'no route');
      return;
    }
    const [, repo = '', kind, reference = ''] = m;
    if (!this.#authorized(req)) {
      this.#error(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': this.#challenge(repo) });
      return;
    }
    if (kind === 'manifests') {
      const stored = this.manifests.get(repo)?.get(reference);
      if (stored === undefined) {
        this.#error(res, 404, 'MANIFEST_UNKNOWN', `manifest unknown: ${reference}`);
        return;
      }
      const accept = req.headers.accept ?? '';
      if (!accept.split(',').some((a) => a.trim().split(';')[0] === stored.mediaType)) {
        this.#error(res, 404, 'MANIFEST_UNKNOWN', `manifest stored as ${stored.mediaType}, not acceptable`);
        return;
      }
      res.writeHead(200, {
        'content-type': stored.mediaType,
        'docker-content-digest': sha256(stored.body),
        'content-length': String(stored.body.length),
      });
      res.end(stored.body);
      return;
    }
    const blob = this.blobs.get(reference);
    if (blob === undefined) {
      this.#error(res, 404, 'BLOB_UNKNOWN', `blob unknown: ${reference}`);
      return;
    }
    const redirect = this.opts.redirectBlobs;
    if (redirect !== undefined && redirect !== false) {
      const base = redirect === true ? `http://${this.storageHost}` : redirect;
      res.writeHead(307, { location: `${base}/storage/${reference}?sig=x` });
      res.end();
      return;
    }
    this.#sendBlob(reference, blob, res);
  }

  #sendBlob(digest: string, blob: Buffer, res: ServerResponse): void {
    let body = blob;
    if (this.corrupt.has(digest)) {
      body = Buffer.from(blob);
      const last = body.length - 1;
      body[last] = (body[last] ?? 0) ^ 0xff;
    }
    const pad = this.padded.get(digest);
    if (pad !== undefined) body = Buffer.concat([body, Buffer.alloc(pad.extra, 0x61)]);
    const send = (): void => {
      const length = pad?.declared === false ? {} : { 'content-length': String(body.length) };
      res.writeHead(200, { 'content-type': 'application/octet-stream', ...length, 'docker-content-digest': digest });
      res.end(body);
    };
    if (this.blobDelayMs > 0) setTimeout(send, this.blobDelayMs);
    else send();
  }

  #handleStorage(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', `http://${this.storageHost}`);
    this.log.push({
      server: 'storage',
      method: req.method ?? '',
      path: url.pathname + url.search,
      authorization: req.headers.authorization,
      accept: req.headers.accept,
    });
    const m = /^\/storage\/(sha256:[a-f0-9]{64})$/.exec(url.pathname);
    const blob = m?.[1] === undefined ? undefined : this.blobs.get(m[1]);
    if (m?.[1] === undefined || blob === undefined || url.searchParams.get('sig') !== 'x') {
      res.writeHead(404);
      res.end();
      return;
    }
    this.#sendBlob(m[1], blob, res);
  }

  #token(url: URL, req: IncomingMessage, res: ServerResponse): void {
    const scope = url.searchParams.get('scope') ?? '';
    if (url.searchParams.get('service') !== 'fake-registry' || !/^repository:[^:]+:pull$/.test(scope)) {
      this.#error(res, 400, 'BAD_TOKEN_REQUEST', `bad service or scope: ${url.search}`);
      return;
    }
    const h = req.headers.authorization;
    if (h !== undefined && !this.#basicOk(h)) {
      this.#error(res, 401, 'UNAUTHORIZED', 'incorrect username or password');
      return;
    }
    if (h === undefined && this.opts.tokenRequiresLogin === true) {
      this.#error(res, 401, 'UNAUTHORIZED', 'login required');
      return;
    }
    const token = `tok-${++this.#tokenCount}`;
    if (!this.tokensExpireAtOnce) this.issuedTokens.add(token);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ [this.opts.tokenField ?? 'token']: token, expires_in: 300 }));
  }
}

/** A docker config.json text holding credentials for `host`. */
export function dockerConfigFor(host: string, username: string, password: string): string {
  return JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } } });
}

/* ---------- the real registry (Debian's docker-registry), umoci and skopeo ---------- */

/** Programs the real-registry tests need, and the Debian packages that have them. */
export const REAL_REGISTRY_TOOLS = ['docker-registry', 'skopeo', 'umoci', 'htpasswd'] as const;
export const REAL_REGISTRY_PACKAGES = 'apt install docker-registry skopeo umoci apache2-utils';

function run(argv: string[], env: Record<string, string>): string {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd as string, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  if (r.status !== 0)
    throw new Error(`${argv.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || String(r.error ?? '')}`);
  return r.stdout;
}

async function freePort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await close(s);
  return port;
}

/**
 * docker-registry on 127.0.0.1:<free port> storing into a temp folder, plain
 * http, optionally with htpasswd basic auth. stop() kills it and removes the folder.
 */
export class RealRegistry {
  readonly host: string;
  readonly dir: string;
  readonly #proc: ChildProcess;
  readonly #basic: string | undefined;
  #log = '';

  private constructor(host: string, dir: string, proc: ChildProcess, basic: string | undefined) {
    this.host = host;
    this.dir = dir;
    this.#proc = proc;
    this.#basic = basic;
    proc.stderr?.on('data', (d: Buffer) => {
      this.#log = (this.#log + d.toString()).slice(-8000);
    });
  }

  static async start(opts: { username?: string; password?: string } = {}): Promise<RealRegistry> {
    const dir = mkdtempSync(join(tmpdir(), 'banger-realreg-'));
    let auth = '';
    if (opts.username !== undefined) {
      run(['htpasswd', '-Bbc', join(dir, 'htpasswd'), opts.username, opts.password ?? ''], {});
      auth = `auth:\n  htpasswd:\n    realm: banger-test\n    path: ${join(dir, 'htpasswd')}\n`;
    }
    const basic =
      opts.username === undefined
        ? undefined
        : `Basic ${Buffer.from(`${opts.username}:${opts.password ?? ''}`).toString('base64')}`;
    // The port was free a moment ago; another process may take it before the registry binds it: then pick another.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const cfg = join(dir, 'config.yml');
      writeFileSync(
        cfg,
        `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: banger-test\n${auth}`,
      );
      const proc = spawn('docker-registry', ['serve', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
      const closed = new Promise((r) => proc.once('close', r));
      const reg = new RealRegistry(`127.0.0.1:${port}`, dir, proc, basic);
      for (let i = 0; i < 100 && proc.exitCode === null; i++) {
        const up = await fetch(`http://${reg.host}/v2/`, { signal: AbortSignal.timeout(2000) }).then(
          (r) => r.status === 200 || r.status === 401,
          () => false,
        );
        if (up) return reg;
        await new Promise((r) => setTimeout(r, 100));
      }
      if (proc.exitCode !== null) await closed; // all of its stderr is in
      const log = reg.#log;
      const taken = /address already in use/i.test(log);
      await reg.stop({ keepDir: taken && attempt < 3 });
      if (!taken || attempt >= 3) throw new Error(`docker-registry did not start: ${log}`);
    }
  }

  async stop(o: { keepDir?: boolean } = {}): Promise<void> {
    const p = this.#proc;
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      p.kill('SIGTERM');
      const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    if (!o.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.#basic === undefined ? extra : { authorization: this.#basic, ...extra };
  }

  /** Uploads a blob (POST then PUT ?digest=), returns its digest. */
  async putBlob(repo: string, data: Buffer): Promise<string> {
    const digest = sha256(data);
    const start = await fetch(`http://${this.host}/v2/${repo}/blobs/uploads/`, {
      method: 'POST',
      headers: this.#headers(),
    });
    if (start.status !== 202) throw new Error(`blob upload start: ${start.status} ${await start.text()}`);
    const loc = new URL(start.headers.get('location') ?? '', `http://${this.host}`);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, {
      method: 'PUT',
      headers: this.#headers({ 'content-type': 'application/octet-stream' }),
      body: new Uint8Array(data),
    });
    if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${await put.text()}`);
    return digest;
  }

  /** PUTs a manifest or index under a tag (or its digest), returns its digest. */
  async putManifest(
    repo: string,
    reference: string | undefined,
    manifest: unknown,
    mediaType: string,
  ): Promise<string> {
    const body = Buffer.from(JSON.stringify(manifest));
    const digest = sha256(body);
    const res = await fetch(`http://${this.host}/v2/${repo}/manifests/${reference ?? digest}`, {
      method: 'PUT',
      headers: this.#headers({ 'content-type': mediaType }),
      body: new Uint8Array(body),
    });
    if (res.status !== 201) throw new Error(`manifest put: ${res.status} ${await res.text()}`);
    return digest;
  }

  /** Pushes an OCI image (layers compressed as asked) with the given platform; returns manifest digest and size. */
  async pushImage(
    repo: string,
    tag: string | undefined,
    spec: ImageSpec,
  ): Promise<{ digest: string; size: number; layers: PushedLayer[] }> {
    const layers: PushedLayer[] = [];
    for (const l of spec.layers) {
      const tar = await tarOf(l.files);
      const blob = compress(tar, l.compression);
      layers.push({
        digest: await this.putBlob(repo, blob),
        diffId: sha256(tar),
        mediaType: layerMediaType(l.compression, 'oci'),
        size: blob.length,
        tar,
        blob,
      });
    }
    const config = Buffer.from(
      JSON.stringify({
        architecture: spec.architecture ?? 'amd64',
        os: spec.os ?? 'linux',
        config: { Env: spec.env ?? [] },
        rootfs: { type: 'layers', diff_ids: spec.diffIds ?? layers.map((l) => l.diffId) },
      }),
    );
    const configDigest = await this.putBlob(repo, config);
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    };
    const size = Buffer.byteLength(JSON.stringify(manifest));
    return { digest: await this.putManifest(repo, tag, manifest, OCI_MANIFEST), size, layers };
  }
}

/**
 * An OCI layout at `<dir>/layout` with image `tag` made by umoci: one layer
 * holding `files` (relative paths), config Env/Cmd set. Returns the layout path.
 */
export function umociImage(dir: string, tag: string, files: Record<string, string>): string {
  const layout = join(dir, 'layout');
  const bundle = join(dir, 'bundle');
  const env = { HOME: dir };
  run(['umoci', 'init', '--layout', layout], env);
  run(['umoci', 'new', '--image', `${layout}:${tag}`], env);
  run(['umoci', 'unpack', '--rootless', '--image', `${layout}:${tag}`, bundle], env);
  for (const [name, body] of Object.entries(files)) {
    const full = join(bundle, 'rootfs', name);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, body);
  }
  run(['umoci', 'repack', '--image', `${layout}:${tag}`, bundle], env);
  run(
    ['umoci', 'config', '--image', `${layout}:${tag}`, '--config.env', 'FROM_UMOCI=1', '--config.cmd', '/bin/sh'],
    env,
  );
  return layout;
}

/** skopeo copy oci:<layout>:<tag> → docker://<dest> over plain http. `format` v2s2 converts to a docker schema2 manifest. */
export function skopeoCopy(
  dir: string,
  layout: string,
  tag: string,
  dest: string,
  opts: { creds?: string; format?: 'oci' | 'v2s2' } = {},
): void {
  const argv = ['skopeo', 'copy', '--insecure-policy', '--dest-tls-verify=false'];
  if (opts.creds !== undefined) argv.push('--dest-creds', opts.creds);
  if (opts.format !== undefined) argv.push('--format', opts.format);
  argv.push(`oci:${layout}:${tag}`, `docker://${dest}`);
  run(argv, { HOME: dir, XDG_RUNTIME_DIR: dir, REGISTRY_AUTH_FILE: join(dir, 'auth.json') });
}
