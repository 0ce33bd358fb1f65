/**
 * Integration (network: loopback only — Debian's docker-registry on
 * 127.0.0.1 started here and a proxy in front of it, the Debian mirror for
 * the kernel pull; guests in user mode with restrict=on): faults on a real
 * daemon in isolated homes. kill -9 of the daemon inside `vm create` (in the
 * window between the qemu spawn and its QMP socket) and inside `vm delete`,
 * after which the system converges and the operation can be retried; the
 * console log of a running VM cut back; a registry cutting a blob short; a
 * state dir on a full filesystem; parallel first use of a fresh home. One
 * image and kernel serve every case; two VM boots here plus two parallel
 * ones in the fresh home. (kill -9 during `image pull` is in image-pull.test.ts.)
 *
 * The daemon is stopped at exact points with BANGER_TEST_PAUSE (test-only,
 * see src/services/testpause.ts): a test stops the daemon, then runs the CLI
 * with that variable, so the daemon the CLI starts inherits it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { tarOf } from '../helpers/registry.js';
import { sh, TEST_CONFIG, TestHome, type CliResult } from '../helpers/home.js';
import { debianBaseTar, LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { makeTinyCatalog, useTinyCatalog } from '../helpers/tiny.js';

const tools = ['docker-registry', 'mmdebstrap', 'debugfs', 'qemu-system-x86_64', 'ssh', 'apt-get', 'depmod'];
const missing = tools.filter(
  (b) => sh(['sh', '-c', `command -v ${b} || test -x /usr/sbin/${b} || test -x /sbin/${b}`]).code !== 0,
);
const skip = missing.length ? `missing host tools: ${missing.join(', ')}` : false;

/** The package set of image-pull.test.ts, so both share one cached base tree. */
const BASE_PACKAGES = ['systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'openssh-server', 'iproute2', 'sudo'];

let home: TestHome;
let reg: LocalRegistry;
let catalog: string;

/** A one-layer image that passes the pipeline's checks (an os-release, a file at systemd's path) but is tiny. */
const tinyLayer = (): Promise<Buffer> =>
  tarOf({ 'etc/os-release': 'ID=debian\n', 'lib/systemd/systemd': '#!/bin/sh\n', 'root/.profile': '# tiny\n' }, 0o755);

before(async () => {
  if (skip) return;
  home = new TestHome('banger-fault-');
  reg = await LocalRegistry.start();
  await pushImage(reg.port, 'test/deb', 'v1', [
    { tar: readFileSync(debianBaseTar(BASE_PACKAGES)), compression: 'gzip' },
  ]);
  await pushImage(reg.port, 'test/tiny', 'v1', [{ tar: await tinyLayer(), compression: 'gzip' }]);
  catalog = await makeTinyCatalog(join(home.root, 'tiny'));
  const r = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/deb:v1`, '--name', 'base']);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  if (skip) return;
  reg.stop();
  await home.cleanup();
});

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !cond()) await new Promise((r) => setTimeout(r, 100));
  assert.ok(cond(), `timed out waiting for ${what}\ndaemon log tail:\n${home.daemonLog().slice(-3000)}`);
}

/** Starts `banger args` under a daemon that pauses at `point`, waits for the pause, kills the daemon with SIGKILL. */
async function killDaemonAt(point: string, args: string[]): Promise<CliResult> {
  assert.equal((await home.banger(['daemon', 'stop'])).code, 0);
  const logBefore = home.daemonLog().length;
  const cli = home.banger(args, 10 * 60_000, { BANGER_TEST_PAUSE: point });
  await waitFor(
    `test pause: ${point}`,
    () => home.daemonLog().slice(logBefore).includes(`test pause: ${point}`),
    180_000,
  );
  process.kill(home.daemonPid(), 'SIGKILL');
  const r = await cli;
  assert.notEqual(r.code, 0, 'the interrupted command fails');
  return r;
}

async function vmNames(): Promise<string[]> {
  const r = await home.banger(['vm', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { name: string }[]).map((v) => v.name);
}

function qmpSockets(): string[] {
  return readdirSync(home.runtimeDir).filter((f) => f.endsWith('.qmp'));
}

test(
  'kill -9 between the qemu spawn and its QMP socket: the restarted daemon kills that qemu and rolls the create back; a retry works',
  { skip },
  async () => {
    await killDaemonAt('after-spawn', ['vm', 'create', '--name', 'w', '--image', 'base']);
    assert.equal(home.qemuPids().length, 1, 'qemu was running when the daemon died');
    assert.deepEqual(await vmNames(), [], 'the unfinished create is rolled back');
    assert.deepEqual(home.qemuPids(), [], 'no qemu is left');
    assert.deepEqual(readdirSync(join(home.stateDir, 'vms')), [], 'no VM dir is left');
    assert.deepEqual(qmpSockets(), [], 'no QMP socket is left');
    const r = await home.banger(['vm', 'create', '--name', 'w', '--image', 'base']);
    assert.equal(r.code, 0, `${r.stderr}\n${home.daemonLog().slice(-3000)}`);
    assert.equal(home.qemuPids().length, 1);
  },
);

test(
  'the console log of a running VM is cut back past 10 MiB; qemu keeps appending; vm logs is bounded and -f follows across the cut',
  { skip },
  async () => {
    const show = JSON.parse((await home.banger(['vm', 'show', 'w', '--json'])).stdout) as { id: string; state: string };
    assert.equal(show.state, 'running');
    const log = join(home.stateDir, 'vms', show.id, 'console.log');
    const follower = home.bangerBackground(['vm', 'logs', '-f', 'w']);
    try {
      await waitFor('the follower to print the boot log', () => follower.stdout().length > 0, 30_000);
      // A chatty guest: 11 MiB more console output (appended the way qemu appends).
      const line = `${'x'.repeat(99)}\n`;
      appendFileSync(log, line.repeat(11 * 10486));
      await waitFor('the daemon to cut the console log back', () => statSync(log).size < 10 << 20, 60_000);
      const r = await home.banger(['vm', 'ssh', 'w', '--', 'sh', '-c', 'echo banger-mark-after-cut > /dev/ttyS0']);
      assert.equal(r.code, 0, r.stderr);
      await waitFor(
        'the mark in the follower output',
        () => follower.stdout().includes('banger-mark-after-cut'),
        30_000,
      );
    } finally {
      await follower.stop();
    }
    const text = readFileSync(log);
    assert.ok(text.includes('banger-mark-after-cut'), 'qemu wrote after the cut');
    assert.equal(text.indexOf(0), -1, 'no hole of NUL bytes: qemu appends at the new end');
    const followed = follower.stdout().toString();
    assert.equal(followed.split('banger-mark-after-cut').length - 1, 1, 'the follower printed the mark once');
    assert.ok(!followed.includes('\0'), 'the follower printed no NUL bytes');
    const logs = await home.banger(['vm', 'logs', 'w']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.ok(logs.stdout.length <= 1 << 20, `vm logs printed ${logs.stdout.length} bytes`);
    assert.match(logs.stdout, /banger-mark-after-cut/);
  },
);

test(
  'kill -9 inside vm delete: after a restart the VM is stopped with no qemu, and the delete can be retried',
  { skip },
  async () => {
    assert.deepEqual(await vmNames(), ['w']);
    await killDaemonAt('vm-delete', ['vm', 'delete', 'w']);
    const r = await home.banger(['vm', 'show', 'w', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { state: string }).state, 'stopped');
    assert.deepEqual(home.qemuPids(), [], 'no qemu is left');
    assert.equal((await home.banger(['vm', 'delete', 'w'])).code, 0);
    assert.deepEqual(await vmNames(), []);
    assert.deepEqual(readdirSync(join(home.stateDir, 'vms')), []);
    assert.deepEqual(qmpSockets(), []);
  },
);

/**
 * A loopback proxy in front of the registry that serves one blob cut short:
 * full Content-Length, half the bytes, then the connection closes.
 */
async function truncatingProxy(
  upstream: number,
  digest: string,
): Promise<{ port: number; server: Server; cut: () => number }> {
  let cuts = 0;
  const server = createServer((req, res) => {
    const up = request(
      { host: '127.0.0.1', port: upstream, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (req.method === 'GET' && (req.url ?? '').endsWith(`/blobs/${digest}`)) {
          const len = Number(ur.headers['content-length']);
          let sent = 0;
          ur.on('data', (d: Buffer) => {
            if (sent >= len / 2) return;
            res.write(d.subarray(0, Math.max(0, Math.min(d.length, Math.floor(len / 2) - sent))));
            sent += d.length;
            if (sent >= len / 2) {
              cuts++;
              ur.destroy();
              res.socket?.destroy();
            }
          });
          return;
        }
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server, cut: () => cuts };
}

test(
  'a registry that cuts a blob short: the pull fails naming the blob, nothing is kept, and it works once the blob is whole',
  { skip },
  async () => {
    const layer = await tarOf({ 'etc/banger-cut': 'y'.repeat(1 << 20) }, 0o755);
    await pushImage(reg.port, 'test/cut', 'v1', [
      { tar: await tinyLayer(), compression: 'gzip' },
      { tar: layer, compression: 'none' },
    ]);
    const digest = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
    const proxy = await truncatingProxy(reg.port, digest);
    try {
      const r = await home.banger(['image', 'pull', `127.0.0.1:${proxy.port}/test/cut:v1`, '--name', 'cut']);
      assert.equal(r.code, 1, r.stderr);
      assert.ok(proxy.cut() > 0, 'the proxy cut the blob');
      assert.match(r.stderr, new RegExp(digest.slice(7, 19)), 'the error names the blob');
      assert.match(r.stderr, /truncated|short|ended|premature|incomplete|closed/i);
      const list = JSON.parse((await home.banger(['image', 'list', '--json'])).stdout) as { name: string }[];
      assert.ok(!list.some((i) => i.name === 'cut'));
      assert.deepEqual(readdirSync(join(home.stateDir, 'tmp')), [], 'no staging left');
      assert.ok(
        !existsSync(join(home.root, 'cache', 'banger', 'oci', 'blobs', 'sha256', digest.slice(7))),
        'no partial blob in the cache',
      );
    } finally {
      proxy.server.close();
    }
    const r = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/cut:v1`, '--name', 'cut']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await home.banger(['image', 'delete', 'cut'])).code, 0);
  },
);

test(
  'a state dir on a full filesystem: pull and create fail with a clear error, leave nothing, and work once there is room',
  { skip },
  async (t) => {
    const img = join(home.root, 'small.ext4');
    const small = new TestHome('banger-enospc-');
    const state = join(small.root, 'state');
    mkdirSync(state, { recursive: true });
    assert.equal(sh(['truncate', '-s', '192M', img]).code, 0);
    assert.equal(sh(['mkfs.ext4', '-q', '-F', '-m', '0', img]).code, 0);
    const mount = sh(['mount', '-o', 'loop', img, state]);
    assert.equal(mount.code, 0, mount.stderr);
    try {
      useTinyCatalog(small.root, catalog);
      const leftovers = (): string[] =>
        ['tmp', 'images', 'vms'].flatMap((d) => readdirSync(join(small.stateDir, d)).map((e) => `${d}/${e}`));
      // The Debian base tree is bigger than the whole filesystem.
      let r = await small.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/deb:v1`, '--name', 'big']);
      t.diagnostic(`pull: ${r.stderr}`);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /no space left on device/i);
      assert.match(r.stderr, /hint: free space on the filesystem holding .*df -h/);
      assert.doesNotMatch(r.stderr, /internal error|this is a bug/);
      assert.deepEqual(leftovers(), [], 'nothing left of the pull');
      r = await small.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/tiny:v1`, '--name', 'tiny']);
      assert.equal(r.code, 0, r.stderr);
      const before = leftovers();
      // Leave 1 MiB free.
      const free = Number(sh(['df', '--output=avail', '-B1', small.stateDir]).stdout.split('\n')[1]);
      const filler = join(small.stateDir, 'filler');
      assert.equal(sh(['fallocate', '-l', String(free - (1 << 20)), filler]).code, 0);
      r = await small.banger(['vm', 'create', '--no-start', '--name', 'c', '--image', 'tiny']);
      t.diagnostic(`create: ${r.stderr}`);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /no space left on device/i);
      assert.doesNotMatch(r.stderr, /internal error|this is a bug/);
      assert.deepEqual(JSON.parse((await small.banger(['vm', 'list', '--json'])).stdout), [], 'no VM row');
      assert.deepEqual(leftovers(), before, 'nothing left of the create');
      rmSync(filler);
      r = await small.banger(['vm', 'create', '--no-start', '--name', 'c', '--image', 'tiny']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await small.banger(['vm', 'delete', 'c'])).code, 0);
    } finally {
      await small.banger(['daemon', 'stop']);
      sh(['umount', state]);
      if (sh(['mountpoint', '-q', state]).code === 0) sh(['umount', '-l', state]);
      await small.cleanup();
    }
  },
);

test(
  'two parallel `vm run --rm -- true` on a fresh home both succeed (one daemon; kernel, image and ssh key made once)',
  { skip },
  async () => {
    const bundle = join(home.root, 'base.tar.zst');
    const r = await home.banger(['image', 'export', 'base', '-o', bundle]);
    assert.equal(r.code, 0, r.stderr);
    const sha = /sha256 ([0-9a-f]{64})/.exec(r.stdout)?.[1];
    assert.ok(sha, r.stdout);
    const fresh = new TestHome('banger-fresh-');
    try {
      const cat = join(fresh.root, 'catalog.json');
      mkdirSync(join(fresh.root, 'config', 'banger'), { recursive: true });
      writeFileSync(
        cat,
        JSON.stringify({
          images: [
            { name: 'base', tarball_url: `file://${bundle}`, tarball_sha256: sha, kernel_ref: 'debian-bookworm-cloud' },
          ],
        }),
      );
      writeFileSync(
        join(fresh.root, 'config', 'banger', 'config.toml'),
        `${TEST_CONFIG}catalog = "${cat}"\ndefault_image_name = "base"\n`,
      );
      const runs = await Promise.all([0, 1].map(() => fresh.banger(['vm', 'run', '--rm', '--', 'true'], 10 * 60_000)));
      for (const [i, run] of runs.entries())
        assert.equal(run.code, 0, `run ${i}: ${run.stderr}\n${fresh.daemonLog().slice(-3000)}`);
      assert.equal((fresh.daemonLog().match(/bangerd ready/g) ?? []).length, 1, 'one daemon served the home');
      assert.deepEqual(JSON.parse((await fresh.banger(['vm', 'list', '--json'])).stdout), []);
      assert.deepEqual(fresh.qemuPids(), []);
    } finally {
      await fresh.cleanup();
      rmSync(bundle, { force: true });
    }
  },
);
