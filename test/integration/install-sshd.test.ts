/**
 * Integration (network: loopback only — Debian's docker-registry on
 * 127.0.0.1 started here, the Debian mirror for the kernel pull; the
 * throwaway VM in user mode with restrict=on through the test-only config
 * test_install_sshd_offline): `image pull --install-sshd` end to end, with a
 * busybox image whose "apt-get" is a script that creates /usr/sbin/sshd. Boots
 * VMs: run it under `flock /work/vm.lock`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pack } from 'tar-stream';
import { sh, TEST_CONFIG, TestHome } from '../helpers/home.js';
import { LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const BUSYBOX = '/bin/busybox';
const skip = requirements(
  [...missingTools([...DEFAULT_VM_TOOLS, 'docker-registry', 'debugfs']), ...(existsSync(BUSYBOX) ? [] : [BUSYBOX])],
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod busybox-static docker-registry',
);

/** A fake apt-get: `update` succeeds; `install` puts an sshd in place (or fails with exit 100 when told). */
const fakeAptGet = (fail: boolean): string =>
  [
    '#!/bin/sh',
    'case "$1" in',
    '  update) echo "fake apt-get update"; exit 0 ;;',
    fail
      ? '  install) echo "E: Unable to locate package openssh-server" >&2; exit 100 ;;'
      : '  install) busybox mkdir -p /usr/sbin && echo "#!/bin/sh" > /usr/sbin/sshd && busybox chmod 755 /usr/sbin/sshd && echo "$*" > /etc/fake-apt-args ;;',
    'esac',
    '',
  ].join('\n');

async function busyboxDebian(fail: boolean): Promise<Buffer> {
  const p = pack();
  p.entry({ name: 'bin/busybox', mode: 0o755 }, readFileSync(BUSYBOX));
  p.entry({ name: 'bin/sh', type: 'symlink', linkname: 'busybox' });
  p.entry({ name: 'etc/os-release', mode: 0o644 }, 'PRETTY_NAME="Fake Debian"\nID=debian\n');
  p.entry({ name: 'usr/bin/apt-get', mode: 0o755 }, fakeAptGet(fail));
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

let home: TestHome;
let reg: LocalRegistry;

before(async () => {
  if (skip) return;
  home = new TestHome('banger-it-sshd-');
  const cfgDir = join(home.root, 'config', 'banger');
  mkdirSync(cfgDir, { recursive: true });
  writeFileSync(join(cfgDir, 'config.toml'), `${TEST_CONFIG}test_install_sshd_offline = true\n`);
  reg = await LocalRegistry.start();
  await pushImage(reg.port, 'test/fakedeb', 'ok', [{ tar: await busyboxDebian(false), compression: 'gzip' }]);
  await pushImage(reg.port, 'test/fakedeb', 'broken', [{ tar: await busyboxDebian(true), compression: 'gzip' }]);
});

after(async () => {
  if (skip) return;
  reg.stop();
  await home.cleanup();
});

const leftovers = (): string[] =>
  ['tmp', 'images', 'vms'].flatMap((d) => {
    const dir = join(home.stateDir, d);
    return existsSync(dir) ? readdirSync(dir).map((e) => `${d}/${e}`) : [];
  });

/** qemu processes of this home (pgrep does not list itself). */
const qemus = (): string[] =>
  sh(['pgrep', '-af', 'qemu-system'])
    .stdout.split('\n')
    .filter((l) => l.includes(home.root));

test(
  'image pull --install-sshd: the package manager runs in a throwaway VM and the result is the image',
  { skip },
  async (t) => {
    const t0 = Date.now();
    const r = await home.banger(
      ['image', 'pull', `127.0.0.1:${reg.port}/test/fakedeb:ok`, '--name', 'withsshd', '--install-sshd'],
      20 * 60_000,
    );
    t.diagnostic(`pull --install-sshd: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(r.code, 0, `${r.stderr}\n${home.daemonLog().slice(-3000)}`);
    const show = JSON.parse((await home.banger(['image', 'show', 'withsshd', '--json'])).stdout) as {
      rootfs: string;
      dir: string;
    };
    const manifest = JSON.parse(readFileSync(join(show.dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(manifest.has_sshd, true);
    assert.equal(manifest.has_systemd, false);
    const args = sh(['debugfs', '-R', 'cat /etc/fake-apt-args', show.rootfs]).stdout;
    assert.match(args, /^install -y --no-install-recommends openssh-server systemd-sysv/);
    assert.match(sh(['debugfs', '-R', 'stat /usr/sbin/sshd', show.rootfs]).stdout, /Type: regular/);
    const images = JSON.parse((await home.banger(['image', 'list', '--json'])).stdout) as { name: string }[];
    assert.deepEqual(
      images.map((i) => i.name),
      ['withsshd'],
      'no temporary image left',
    );
    assert.deepEqual(JSON.parse((await home.banger(['vm', 'list', '--json'])).stdout), [], 'no throwaway VM left');
    assert.deepEqual(qemus(), [], 'no VMM process left');
  },
);

test(
  'image pull --install-sshd whose install fails: a clear error, and no image, VM, disk or process left',
  { skip },
  async () => {
    const before = leftovers();
    const r = await home.banger(
      ['image', 'pull', `127.0.0.1:${reg.port}/test/fakedeb:broken`, '--name', 'broken', '--install-sshd'],
      20 * 60_000,
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /apt install in the throwaway VM failed \(exit 100\): E: Unable to locate package openssh-server/,
    );
    const images = JSON.parse((await home.banger(['image', 'list', '--json'])).stdout) as { name: string }[];
    assert.deepEqual(
      images.map((i) => i.name),
      ['withsshd'],
    );
    assert.deepEqual(JSON.parse((await home.banger(['vm', 'list', '--json'])).stdout), []);
    assert.deepEqual(leftovers(), before, 'no staging dir, image dir or VM dir left');
    assert.deepEqual(qemus(), []);
  },
);
