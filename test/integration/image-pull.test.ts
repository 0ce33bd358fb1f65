/**
 * Integration (network: loopback only — Debian's docker-registry on
 * 127.0.0.1 started here; guests in user mode with restrict=on): OCI pulls
 * through the real CLI and daemon, checked with debugfs on the result, and a
 * boot of the pulled image.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pack } from 'tar-stream';
import { sh, TestHome } from '../helpers/home.js';
import { missingTools, requirements } from '../helpers/requirements.js';
import { debianBaseTar, LocalRegistry, manifestSize, pushImage, pushIndex } from '../helpers/oci-push.js';

const skip = requirements(
  missingTools([
    'docker-registry',
    'htpasswd',
    'openssl',
    'mmdebstrap',
    'mkfs.ext4',
    'debugfs',
    'qemu-system-x86_64',
    'qemu-img',
    'ssh',
    'apt-get',
    'apt-cache',
    'dpkg-deb',
    'depmod',
  ]),
  'apt install docker-registry apache2-utils openssl mmdebstrap e2fsprogs qemu-system-x86 qemu-utils openssh-client apt dpkg kmod',
);

let home: TestHome;
let reg: LocalRegistry;
let base: Buffer;

type Entry = { name: string; type?: 'file' | 'directory' | 'link'; body?: string; linkname?: string; mode?: number };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    if (e.type === 'directory') p.entry({ name: e.name, type: 'directory', mode: e.mode ?? 0o755 });
    else if (e.type === 'link') p.entry({ name: e.name, type: 'link', linkname: e.linkname as string });
    else p.entry({ name: e.name, mode: e.mode ?? 0o644 }, e.body ?? '');
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function showImage(name: string): Promise<{ rootfs: string; dir: string; work_seed: boolean }> {
  const r = await home.banger(['image', 'show', name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { rootfs: string; dir: string; work_seed: boolean };
}

function dstat(img: string, path: string): string {
  return sh(['debugfs', '-R', `stat ${path}`, img]).stdout;
}

before(async () => {
  if (skip) return;
  home = new TestHome('banger-oci-');
  reg = await LocalRegistry.start();
  base = readFileSync(
    debianBaseTar(['systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'openssh-server', 'iproute2', 'sudo']),
  );
});

after(async () => {
  if (skip) return;
  reg.stop();
  await home.cleanup();
});

/** Pushes test/deb:v1: the Debian base, then gzip, zstd and plain layers with whiteouts, an opaque dir and a hardlink. */
async function pushOciTest(): Promise<void> {
  const l2 = await tarOf([
    { name: 'opt/keep/a', body: 'a' },
    { name: 'opt/gone/b', body: 'b' },
    { name: 'srv/hl-src', body: 'shared' },
    { name: 'srv/hl-dst', type: 'link', linkname: 'srv/hl-src' },
    { name: 'etc/banger-remove-me', body: 'x' },
  ]);
  const l3 = await tarOf([
    { name: 'opt/.wh..wh..opq', body: '' },
    { name: 'opt/new', body: 'new' },
    { name: 'etc/.wh.banger-remove-me', body: '' },
  ]);
  await pushImage(reg.port, 'test/deb', 'v1', [
    { tar: base, compression: 'gzip' },
    { tar: l2, compression: 'zstd' },
    { tar: l3, compression: 'none' },
  ]);
}

/**
 * The image `ocitest`: the one the first test pulled when it is there (the
 * usual case), else pulled here, so that one failed test does not fail the
 * tests after it for want of the image.
 */
async function ociTestImage(): Promise<string> {
  if ((await home.banger(['image', 'show', 'ocitest', '--json'])).code === 0) return 'ocitest';
  await pushOciTest();
  const r = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/deb:v1`, '--name', 'ocitest']);
  assert.equal(r.code, 0, `pulling the image ocitest for this test: ${r.stderr}`);
  return 'ocitest';
}

test(
  'an OCI image with gzip, zstd and plain layers, whiteouts, an opaque dir and a hardlink pulls exactly',
  { skip },
  async () => {
    await pushOciTest();
    const r = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/deb:v1`, '--name', 'ocitest']);
    assert.equal(r.code, 0, r.stderr);
    const img = await showImage('ocitest');
    const sudo = dstat(img.rootfs, '/usr/bin/sudo');
    assert.match(sudo, /User:\s+0\s/);
    assert.match(sudo, /Mode:\s+04755/);
    assert.match(sh(['debugfs', '-R', 'stat /etc/banger-remove-me', img.rootfs]).stderr, /File not found/);
    assert.match(
      sh(['debugfs', '-R', 'stat /opt/keep', img.rootfs]).stderr,
      /File not found/,
      'opaque dir cleared lower layers',
    );
    assert.match(dstat(img.rootfs, '/opt/new'), /Type: regular/);
    const ino = (p: string): string | undefined => /Inode: (\d+)/.exec(dstat(img.rootfs, p))?.[1];
    assert.ok(ino('/srv/hl-src'));
    assert.equal(ino('/srv/hl-src'), ino('/srv/hl-dst'), 'hardlink shares an inode');
    const boot = dstat(img.rootfs, '/usr/local/libexec/banger-bootstrap');
    assert.match(boot, /User:\s+0\s/);
    assert.match(boot, /Mode:\s+0755/);
    assert.doesNotMatch(
      sh(['debugfs', '-R', 'ls /etc/ssh', img.rootfs]).stdout,
      /ssh_host_/,
      'no host keys in the image',
    );
    assert.ok(img.work_seed);
    assert.ok(readdirSync(img.dir).includes('work-seed.ext4'));
  },
);

test('the pulled image boots; setuid root and the whiteouts hold in the guest', { skip }, async () => {
  const r = await home.banger([
    'vm',
    'run',
    '--rm',
    '--image',
    await ociTestImage(),
    '--',
    'sh',
    '-c',
    'stat -c "%u %a" /usr/bin/sudo; cat /opt/new; test ! -e /opt/keep && echo opaque-ok',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '0 4755\nnewopaque-ok\n');
});

test('a layer with ../escape fails naming the path; no image row, nothing outside staging', { skip }, async () => {
  const evil = await tarOf([{ name: '../escape', body: 'x' }]);
  await pushImage(reg.port, 'test/evil', 'v1', [
    { tar: base, compression: 'gzip' },
    { tar: evil, compression: 'gzip' },
  ]);
  const r = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/evil:v1`, '--name', 'evil']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\.\.\/escape/);
  assert.match(r.stderr, /layer 2/);
  const list = JSON.parse((await home.banger(['image', 'list', '--json'])).stdout) as { name: string }[];
  assert.ok(!list.some((i) => i.name === 'evil'), 'no image row');
  assert.deepEqual(readdirSync(join(home.stateDir, 'tmp')), [], 'no staging left');
  assert.deepEqual(
    readdirSync(join(home.stateDir, 'images')).filter((d) => d.endsWith('.staging')),
    [],
  );
  assert.equal(
    sh(['sh', '-c', `ls ${join(home.stateDir, 'images')}/escape ${join(home.stateDir)}/escape 2>/dev/null`]).stdout,
    '',
  );
});

test(
  'basic auth: without credentials a clear error; with ~/.docker/config.json the pull works (warm blob cache)',
  { skip },
  async () => {
    const authReg = await LocalRegistry.start({ user: 'banger', password: 's3cret' });
    try {
      await pushImage(authReg.port, 'test/deb', 'v1', [{ tar: base, compression: 'gzip' }], 'banger:s3cret');
      const ref = `127.0.0.1:${authReg.port}/test/deb:v1`;
      let r = await home.banger(['image', 'pull', ref, '--name', 'authed']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /auth/i);
      mkdirSync(join(home.env.HOME as string, '.docker'), { recursive: true });
      writeFileSync(
        join(home.env.HOME as string, '.docker', 'config.json'),
        JSON.stringify({
          auths: { [`127.0.0.1:${authReg.port}`]: { auth: Buffer.from('banger:s3cret').toString('base64') } },
        }),
      );
      r = await home.banger(['image', 'pull', ref, '--name', 'authed']);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /\[download\] layer/, 'layer came from the blob cache');
      assert.equal((await home.banger(['image', 'delete', 'authed'])).code, 0);
    } finally {
      authReg.stop();
    }
  },
);

test(
  'image export then image pull file:// round-trips an image that boots; a wrong sha256 leaves nothing',
  { skip },
  async () => {
    const out = join(home.root, 'ocitest.tar.zst');
    let r = await home.banger(['image', 'export', await ociTestImage(), '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    const sha = /sha256 ([0-9a-f]{64})/.exec(r.stdout)?.[1];
    assert.ok(sha, r.stdout);
    r = await home.banger(['image', 'pull', `file://${out}`, '--sha256', '0'.repeat(64), '--name', 'badsha']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /sha256 mismatch/);
    assert.deepEqual(readdirSync(join(home.stateDir, 'tmp')), [], 'no staging left');
    r = await home.banger(['image', 'pull', `file://${out}`, '--sha256', sha, '--name', 'roundtrip']);
    assert.equal(r.code, 0, r.stderr);
    r = await home.banger([
      'vm',
      'run',
      '--rm',
      '--image',
      'roundtrip',
      '--',
      'sh',
      '-c',
      'cat /opt/new; ls -a /root | grep -c bashrc',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'new1\n');
    assert.equal((await home.banger(['image', 'delete', 'roundtrip'])).code, 0);
  },
);

test('bearer-token flow: a registry with token auth and a token server made here', { skip }, async () => {
  const tokReg = await LocalRegistry.start({ token: true });
  try {
    await pushImage(tokReg.port, 'test/deb', 'v1', [{ tar: base, compression: 'gzip' }], tokReg.token);
    const before = tokReg.token?.requests ?? 0;
    const r = await home.banger(['image', 'pull', `127.0.0.1:${tokReg.port}/test/deb:v1`, '--name', 'tokened']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((tokReg.token?.requests ?? 0) > before, 'the client fetched a token from the realm');
    assert.equal((await home.banger(['image', 'delete', 'tokened'])).code, 0);
  } finally {
    tokReg.stop();
  }
});

test('a multi-arch index: linux/amd64 is selected', { skip }, async () => {
  const arch = async (a: string): Promise<Buffer> => tarOf([{ name: 'etc/banger-arch', body: a }]);
  const amd = await pushImage(reg.port, 'test/multi', 'amd64', [
    { tar: base, compression: 'gzip' },
    { tar: await arch('amd64'), compression: 'gzip' },
  ]);
  const arm = await pushImage(reg.port, 'test/multi', 'arm64', [
    { tar: base, compression: 'gzip' },
    { tar: await arch('arm64'), compression: 'gzip' },
  ]);
  await pushIndex(reg.port, 'test/multi', 'v1', [
    { digest: arm, size: await manifestSize(reg.port, 'test/multi', arm), arch: 'arm64' },
    { digest: amd, size: await manifestSize(reg.port, 'test/multi', amd), arch: 'amd64' },
  ]);
  const r = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/multi:v1`, '--name', 'multi']);
  assert.equal(r.code, 0, r.stderr);
  const img = await showImage('multi');
  assert.equal(sh(['debugfs', '-R', 'cat /etc/banger-arch', img.rootfs]).stdout, 'amd64');
  assert.equal((await home.banger(['image', 'delete', 'multi'])).code, 0);
});

test('a blob whose bytes do not match its digest: clear error, no image', { skip }, async () => {
  const extra = await tarOf([{ name: 'etc/banger-corrupt-test', body: 'original content that will be replaced' }]);
  await pushImage(reg.port, 'test/corrupt', 'v1', [
    { tar: base, compression: 'gzip' },
    { tar: extra, compression: 'none' },
  ]);
  const digest = `sha256:${createHash('sha256').update(extra).digest('hex')}`;
  const stored = reg.blobPath(digest);
  const bytes = readFileSync(stored);
  bytes[bytes.length - 1024] = (bytes[bytes.length - 1024] ?? 0) ^ 0xff;
  writeFileSync(stored, bytes);
  const r = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/corrupt:v1`, '--name', 'corrupt']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(digest.slice(7, 19)));
  const list = JSON.parse((await home.banger(['image', 'list', '--json'])).stdout) as { name: string }[];
  assert.ok(!list.some((i) => i.name === 'corrupt'));
  assert.deepEqual(readdirSync(join(home.stateDir, 'tmp')), [], 'no staging left');
});

test('concurrent pulls of one reference share one download', { skip }, async () => {
  const unique = await tarOf([{ name: 'var/banger-unique', body: randomBytes(8 << 20).toString('base64') }]);
  await pushImage(reg.port, 'test/shared', 'v1', [
    { tar: base, compression: 'gzip' },
    { tar: unique, compression: 'gzip' },
  ]);
  const ref = `127.0.0.1:${reg.port}/test/shared:v1`;
  const [a, b] = await Promise.all([
    home.banger(['image', 'pull', ref, '--name', 'shared']),
    home.banger(['image', 'pull', ref, '--name', 'shared']),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const list = JSON.parse((await home.banger(['image', 'list', '--json'])).stdout) as { name: string }[];
  assert.equal(list.filter((i) => i.name === 'shared').length, 1);
  const digest = `sha256:${createHash('sha256').update(gzipSync(unique)).digest('hex')}`;
  assert.equal(reg.blobGets(digest), 1, 'the unique layer was downloaded once');
  assert.equal((await home.banger(['image', 'delete', 'shared'])).code, 0);
});

test(
  'a daemon killed mid-pull leaves no row, its staging is removed at the next start, and the pull can be retried',
  { skip },
  async () => {
    const unique = await tarOf([{ name: 'var/banger-unique2', body: randomBytes(8 << 20).toString('base64') }]);
    await pushImage(reg.port, 'test/killed', 'v1', [
      { tar: base, compression: 'gzip' },
      { tar: unique, compression: 'gzip' },
    ]);
    const ref = `127.0.0.1:${reg.port}/test/killed:v1`;
    const pull = home.banger(['image', 'pull', ref, '--name', 'killed']);
    const tmpDir = join(home.stateDir, 'tmp');
    const staged = (): boolean => existsSync(tmpDir) && readdirSync(tmpDir).some((d) => d.startsWith('image-'));
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && !staged()) await new Promise((r) => setTimeout(r, 100));
    assert.ok(staged(), 'the pull reached its staging dir');
    process.kill(Number(readFileSync(join(home.runtimeDir, 'bangerd.pid'), 'utf8')), 'SIGKILL');
    const r = await pull;
    assert.notEqual(r.code, 0);
    const list = JSON.parse((await home.banger(['image', 'list', '--json'])).stdout) as { name: string }[];
    assert.ok(!list.some((i) => i.name === 'killed'), 'no row');
    assert.deepEqual(readdirSync(tmpDir), [], 'staging removed by the new daemon');
    const again = await home.banger(['image', 'pull', ref, '--name', 'killed']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await home.banger(['image', 'delete', 'killed'])).code, 0);
  },
);

test('deleting an image used by a VM is refused with the VM name', { skip }, async () => {
  let r = await home.banger(['vm', 'create', '--name', 'holder', '--image', await ociTestImage(), '--no-start']);
  assert.equal(r.code, 0, r.stderr);
  r = await home.banger(['image', 'delete', 'ocitest']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /used by VM holder/);
  assert.equal((await home.banger(['vm', 'delete', 'holder'])).code, 0);
  assert.equal((await home.banger(['image', 'delete', 'ocitest'])).code, 0);
});

test('image cache prune reports, then frees, the cached blobs', { skip }, async () => {
  let r = await home.banger(['image', 'cache', 'prune', '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  const would = /would free \S+ in (\d+) blob/.exec(r.stdout);
  assert.ok(would && Number(would[1]) > 0, r.stdout);
  r = await home.banger(['image', 'cache', 'prune']);
  assert.match(r.stdout, new RegExp(`freed \\S+ in ${would[1]} blob`));
  r = await home.banger(['image', 'cache', 'prune', '--dry-run']);
  assert.match(r.stdout, /in 0 blob/);
});
