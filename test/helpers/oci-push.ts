import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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

  static async start(opts: { user?: string; password?: string } = {}): Promise<LocalRegistry> {
    const dir = mkdtempSync(join(tmpdir(), 'banger-reg-'));
    const port = await freePort();
    let auth = '';
    if (opts.user) {
      const r = spawnSync('htpasswd', ['-Bbc', join(dir, 'htpasswd'), opts.user, opts.password ?? '']);
      if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
      auth = `auth:\n  htpasswd:\n    realm: banger-test\n    path: ${join(dir, 'htpasswd')}\n`;
    }
    writeFileSync(join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`);
    const proc = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
    const reg = new LocalRegistry(port, dir, proc);
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status === 200 || r.status === 401, () => false);
      if (ok) return reg;
      await new Promise((r) => setTimeout(r, 100));
    }
    reg.stop();
    throw new Error('docker-registry did not start');
  }

  stop(): void {
    this.proc.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Layer {
  tar: Buffer;
  compression: 'gzip' | 'zstd' | 'none';
}

const MEDIA = { gzip: 'application/vnd.oci.image.layer.v1.tar+gzip', zstd: 'application/vnd.oci.image.layer.v1.tar+zstd', none: 'application/vnd.oci.image.layer.v1.tar' };

/** Pushes an OCI image with the distribution API's monolithic upload; returns the manifest digest. */
export async function pushImage(port: number, repo: string, tag: string, layers: Layer[], basic?: string): Promise<string> {
  const base = `http://127.0.0.1:${port}/v2/${repo}`;
  const headers: Record<string, string> = basic ? { authorization: `Basic ${Buffer.from(basic).toString('base64')}` } : {};
  const putBlob = async (data: Buffer): Promise<string> => {
    const digest = sha256(data);
    const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST', headers });
    if (start.status !== 202) throw new Error(`upload start: ${start.status}`);
    const loc = new URL(start.headers.get('location') as string, `http://127.0.0.1:${port}`);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: new Uint8Array(data) });
    if (put.status !== 201) throw new Error(`upload: ${put.status} ${await put.text()}`);
    return digest;
  };
  const descs = [];
  for (const l of layers) {
    const blob = l.compression === 'gzip' ? gzipSync(l.tar) : l.compression === 'zstd' ? Buffer.from(zstdCompress(l.tar)) : l.tar;
    descs.push({ mediaType: MEDIA[l.compression], digest: await putBlob(blob), size: blob.length });
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l.tar)) } }));
  const configDigest = await putBlob(config);
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length }, layers: descs }),
  );
  const res = await fetch(`${base}/manifests/${tag}`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: new Uint8Array(manifest) });
  if (res.status !== 201) throw new Error(`manifest: ${res.status} ${await res.text()}`);
  return sha256(manifest);
}

/** A Debian tree with systemd and sshd as one tar, built once per package set and cached under .test-cache/. */
export function debianBaseTar(packages: string[]): string {
  const key = createHash('sha256').update(packages.join(',')).digest('hex').slice(0, 12);
  const dir = join(REPO, '.test-cache');
  const out = join(dir, `debian-base-${key}.tar`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mmdebstrap', ['--mode=auto', '--variant=apt', `--include=${packages.join(',')}`, '--format=tar', 'bookworm', `${out}.partial`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mmdebstrap failed: ${r.stderr.slice(-2000)}`);
  renameSync(`${out}.partial`, out);
  return out;
}
