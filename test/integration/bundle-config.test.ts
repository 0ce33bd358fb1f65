/**
 * Integration (network: loopback only — Debian's docker-registry on
 * 127.0.0.1 started here; no VM boots): an image bundle carries the image's
 * OCI runtime config (Env, WorkingDir, User, Entrypoint, Cmd) and
 * has_sshd/has_systemd, and `image pull file://…` restores them; a bundle
 * whose config is malformed is refused and leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { tarOf } from '../helpers/registry.js';
import { sh, TestHome } from '../helpers/home.js';
import { LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { missingTools, requirements } from '../helpers/requirements.js';
import { sha256Hex, tarZst } from '../helpers/tar-zst.js';
import { makeTinyCatalog, useTinyCatalog } from '../helpers/tiny.js';

const skip = requirements(
  missingTools(['docker-registry', 'mkfs.ext4', 'debugfs', 'e2fsck']),
  'apt install docker-registry e2fsprogs',
);

const RUN_CONFIG = {
  Env: ['PATH=/opt/bin:/usr/bin:/bin', 'GREETING=hello world'],
  WorkingDir: '/srv/app',
  User: '1000:1000',
  Entrypoint: ['/bin/sh', '-c'],
  Cmd: ['echo hi'],
};

let home: TestHome;
let reg: LocalRegistry;

async function show(name: string): Promise<Record<string, unknown>> {
  const r = await home.banger(['image', 'show', name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

const leftovers = (): string[] =>
  ['tmp', 'images'].flatMap((d) => readdirSync(join(home.stateDir, d)).map((e) => `${d}/${e}`));

before(async () => {
  if (skip) return;
  home = new TestHome('banger-bundlecfg-');
  useTinyCatalog(home.root, await makeTinyCatalog(join(home.root, 'tiny')));
  reg = await LocalRegistry.start();
  // No sshd, no systemd: the image boots with banger's init (has_sshd/has_systemd false).
  await pushImage(
    reg.port,
    'test/cfg',
    'v1',
    [
      {
        tar: await tarOf({ 'etc/os-release': 'ID=debian\n', 'root/.profile': '# tiny\n' }, 0o755),
        compression: 'gzip',
      },
    ],
    undefined,
    RUN_CONFIG,
  );
});

after(async () => {
  if (skip) return;
  reg.stop();
  await home.cleanup();
});

test('image export then image pull file:// keeps the image config and has_sshd/has_systemd', { skip }, async () => {
  let r = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/cfg:v1`, '--name', 'cfg']);
  assert.equal(r.code, 0, r.stderr);
  const pulled = await show('cfg');
  assert.deepEqual(pulled.config, {
    env: RUN_CONFIG.Env,
    working_dir: '/srv/app',
    user: '1000:1000',
    entrypoint: ['/bin/sh', '-c'],
    cmd: ['echo hi'],
  });
  const out = join(home.root, 'cfg.tar.zst');
  r = await home.banger(['image', 'export', 'cfg', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  const sha = /sha256 ([0-9a-f]{64})/.exec(r.stdout)?.[1];
  assert.ok(sha, r.stdout);
  r = await home.banger(['image', 'pull', `file://${out}`, '--sha256', sha, '--name', 'cfg2']);
  assert.equal(r.code, 0, r.stderr);
  const imported = await show('cfg2');
  assert.deepEqual(imported.config, pulled.config);
  const manifest = (name: string): Record<string, unknown> => {
    const dir = (name === 'cfg' ? pulled : imported).dir as string;
    return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  };
  assert.equal(manifest('cfg').has_sshd, false);
  assert.equal(manifest('cfg2').has_sshd, false, 'has_sshd travels with the bundle');
  assert.equal(manifest('cfg2').has_systemd, manifest('cfg').has_systemd);
  assert.equal((await home.banger(['image', 'delete', 'cfg2'])).code, 0);
});

const BAD_CONFIGS: { name: string; config: unknown; re: RegExp }[] = [
  {
    name: 'a NUL in Env',
    config: { env: ['A=x\u0000y'] },
    re: /bundle manifest: image config Env\[0\] contains a NUL byte/,
  },
  { name: 'Env that is not NAME=value', config: { env: ['novalue'] }, re: /Env\[0\] "novalue" is not NAME=value/ },
  { name: 'a working_dir that is a number', config: { working_dir: 7 }, re: /WorkingDir is not a string/ },
  {
    name: 'too many cmd entries',
    config: { cmd: Array.from({ length: 1025 }, () => 'x') },
    re: /Cmd has 1025 entries \(at most 1024\)/,
  },
  { name: 'an unknown config key', config: { env: [], shell: ['/bin/sh'] }, re: /config has an unknown key "shell"/ },
  { name: 'a config that is a string', config: 'PATH=/bin', re: /bundle manifest: config is not an object/ },
];

for (const c of BAD_CONFIGS) {
  test(`a bundle with ${c.name} in its config is refused and leaves nothing`, { skip }, async () => {
    const rootfs = join(home.root, 'bad-rootfs.ext4');
    const mk = sh(['mkfs.ext4', '-q', '-F', rootfs, '8M']);
    assert.equal(mk.code, 0, mk.stderr);
    const manifest = {
      format: 1,
      name: 'badcfg',
      distro: 'debian',
      arch: 'x86_64',
      kernel_ref: 'tiny-k',
      rootfs_bytes: 8 << 20,
      assets_version: 1,
      created_at: '2026-01-01T00:00:00.000Z',
      config: c.config,
    };
    const archive = await tarZst([
      { name: 'manifest.json', body: JSON.stringify(manifest) },
      { name: 'rootfs.ext4', body: readFileSync(rootfs) },
    ]);
    const file = join(home.root, 'bad.tar.zst');
    writeFileSync(file, archive);
    const images = JSON.parse((await home.banger(['image', 'list', '--json'])).stdout) as unknown[];
    const before = leftovers();
    const r = await home.banger(['image', 'pull', `file://${file}`, '--sha256', sha256Hex(archive)]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, c.re);
    assert.doesNotMatch(r.stderr, /internal error|this is a bug/);
    assert.deepEqual(JSON.parse((await home.banger(['image', 'list', '--json'])).stdout), images, 'no image row');
    assert.deepEqual(leftovers(), before, 'no staging dir, no image dir');
  });
}
