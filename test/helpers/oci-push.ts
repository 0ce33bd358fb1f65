import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, sign as cryptoSign } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';
import { REPO } from './home.js';

export const sha256 = (b: Uint8Array | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Debian's docker-registry (the real distribution server) on 127.0.0.1 with a temp store. */
export class LocalRegistry {
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly proc: ChildProcess,
  ) {}

  /** Token server of the bearer flow (when started with `token: true`). */
  token: TokenServer | undefined;

  static async start(opts: { user?: string; password?: string; token?: boolean } = {}): Promise<LocalRegistry> {
    const dir = mkdtempSync(join(tmpdir(), 'banger-reg-'));
    let auth = '';
    let token: TokenServer | undefined;
    if (opts.token) {
      token = await TokenServer.start(dir);
      auth = `auth:\n  token:\n    realm: http://127.0.0.1:${token.port}/token\n    service: ${TOKEN_SERVICE}\n    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${join(dir, 'cert.pem')}\n`;
    }
    if (opts.user) {
      const r = spawnSync('htpasswd', ['-Bbc', join(dir, 'htpasswd'), opts.user, opts.password ?? '']);
      if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
      auth = `auth:\n  htpasswd:\n    realm: banger-test\n    path: ${join(dir, 'htpasswd')}\n`;
    }
    // The port was free a moment ago; another process may take it before the registry binds it: then pick another.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      writeFileSync(
        join(dir, 'config.yml'),
        `version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`,
      );
      writeFileSync(join(dir, 'registry.log'), '');
      const log = openSync(join(dir, 'registry.log'), 'a');
      const proc = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', log, log] });
      closeSync(log);
      const reg = new LocalRegistry(port, dir, proc);
      reg.token = token;
      for (let i = 0; i < 100 && proc.exitCode === null; i++) {
        const ok = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(2000) }).then(
          (r) => r.status === 200 || r.status === 401,
          () => false,
        );
        if (ok) return reg;
        await new Promise((r) => setTimeout(r, 100));
      }
      const text = readFileSync(join(dir, 'registry.log'), 'utf8');
      const taken = proc.exitCode !== null && /address already in use/i.test(text);
      if (taken && attempt < 3) {
        proc.kill('SIGKILL');
        continue;
      }
      reg.stop();
      throw new Error(`docker-registry did not start: ${text.slice(-2000)}`);
    }
  }

  /** How many times the registry answered a GET for this blob (from its access log). */
  blobGets(digest: string): number {
    const text = readFileSync(join(this.dir, 'registry.log'), 'utf8');
    return text.split('\n').filter((l) => l.includes(`"GET /v2/`) && l.includes(`/blobs/${digest}`)).length;
  }

  /** The registry's own copy of a blob (filesystem storage driver layout), for corruption tests. */
  blobPath(digest: string): string {
    const hex = digest.replace(/^sha256:/, '');
    return join(this.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  }

  stop(): void {
    this.token?.close();
    this.proc.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const TOKEN_SERVICE = 'banger-test-registry';
const TOKEN_ISSUER = 'banger-test-issuer';
const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/**
 * A small bearer-token service for docker-registry's token auth: RS256 JWTs
 * whose x5c header carries the self-signed certificate the registry trusts.
 * Grants what the scope asks for; counts requests so tests can see the flow.
 */
export class TokenServer {
  requests = 0;
  private constructor(
    readonly port: number,
    private readonly server: Server,
    private readonly key: string,
    private readonly certDer: Buffer,
  ) {}

  static async start(dir: string): Promise<TokenServer> {
    const r = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=banger-test-token',
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
    const pem = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const key = readFileSync(join(dir, 'key.pem'), 'utf8');
    const ref: { self?: TokenServer } = {};
    const server = createHttpServer((req, res) => {
      if (ref.self) ref.self.requests++;
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const scopes = url.searchParams.getAll('scope');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: ref.self?.issue(scopes), expires_in: 300 }));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    ref.self = new TokenServer((server.address() as { port: number }).port, server, key, der);
    return ref.self;
  }

  /** A signed token for 'repository:NAME:ACTIONS' scopes. */
  issue(scopes: string[]): string {
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.map((s) => {
      const [type, name, actions] = s.split(':');
      return { type, name, actions: (actions ?? '').split(',').filter(Boolean) };
    });
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [this.certDer.toString('base64')] }));
    const claims = b64url(
      JSON.stringify({
        iss: TOKEN_ISSUER,
        sub: 'banger-test',
        aud: TOKEN_SERVICE,
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: randomBytes(8).toString('hex'),
        access,
      }),
    );
    const sig = cryptoSign('RSA-SHA256', Buffer.from(`${header}.${claims}`), this.key);
    return `${header}.${claims}.${b64url(sig)}`;
  }

  close(): void {
    this.server.close();
  }
}

export interface Layer {
  tar: Buffer;
  compression: 'gzip' | 'zstd' | 'none';
}

const MEDIA = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  none: 'application/vnd.oci.image.layer.v1.tar',
};

/** Pushes an OCI image with the distribution API's monolithic upload; returns the manifest digest. */
export async function pushImage(
  port: number,
  repo: string,
  tag: string,
  layers: Layer[],
  auth?: string | TokenServer,
  /** The image config's `config` object (Env, WorkingDir, User, Entrypoint, Cmd); empty by default. */
  runConfig: Record<string, unknown> = {},
): Promise<string> {
  const base = `http://127.0.0.1:${port}/v2/${repo}`;
  const headers: Record<string, string> =
    auth === undefined
      ? {}
      : typeof auth === 'string'
        ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` }
        : { authorization: `Bearer ${auth.issue([`repository:${repo}:pull,push`])}` };
  const putBlob = async (data: Buffer): Promise<string> => {
    const digest = sha256(data);
    const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST', headers });
    if (start.status !== 202) throw new Error(`upload start: ${start.status}`);
    const loc = new URL(start.headers.get('location') as string, `http://127.0.0.1:${port}`);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: new Uint8Array(data),
    });
    if (put.status !== 201) throw new Error(`upload: ${put.status} ${await put.text()}`);
    return digest;
  };
  const descs = [];
  for (const l of layers) {
    const blob =
      l.compression === 'gzip' ? gzipSync(l.tar) : l.compression === 'zstd' ? Buffer.from(zstdCompress(l.tar)) : l.tar;
    descs.push({ mediaType: MEDIA[l.compression], digest: await putBlob(blob), size: blob.length });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: runConfig,
      rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l.tar)) },
    }),
  );
  const configDigest = await putBlob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: descs,
    }),
  );
  const res = await fetch(`${base}/manifests/${tag}`, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: new Uint8Array(manifest),
  });
  if (res.status !== 201) throw new Error(`manifest: ${res.status} ${await res.text()}`);
  return sha256(manifest);
}

/** Pushes an OCI index over already-pushed manifests (by digest), one per platform. */
export async function pushIndex(
  port: number,
  repo: string,
  tag: string,
  entries: { digest: string; size: number; arch: string }[],
): Promise<void> {
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: entries.map((e) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: e.digest,
        size: e.size,
        platform: { architecture: e.arch, os: 'linux' },
      })),
    }),
  );
  const res = await fetch(`http://127.0.0.1:${port}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
    body: new Uint8Array(index),
  });
  if (res.status !== 201) throw new Error(`index: ${res.status} ${await res.text()}`);
}

/** Size of a manifest already in the registry. */
export async function manifestSize(port: number, repo: string, ref: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/v2/${repo}/manifests/${ref}`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  return (await res.arrayBuffer()).byteLength;
}

/** A Debian tree with systemd and sshd as one tar, built once per package set and cached under .test-cache/. */
export function debianBaseTar(packages: string[]): string {
  const key = createHash('sha256').update(packages.join(',')).digest('hex').slice(0, 12);
  const dir = join(REPO, '.test-cache');
  const out = join(dir, `debian-base-${key}.tar`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const r = spawnSync(
    'mmdebstrap',
    ['--mode=auto', '--variant=apt', `--include=${packages.join(',')}`, '--format=tar', 'bookworm', `${out}.partial`],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`mmdebstrap failed: ${r.stderr.slice(-2000)}`);
  renameSync(`${out}.partial`, out);
  return out;
}
