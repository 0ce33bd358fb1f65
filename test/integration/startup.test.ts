/**
 * Integration (network: none — every download is a file:// URL made here; no
 * VM boots): what a daemon does at start through the real CLI and daemon —
 * the sweep of crash leftovers, one daemon per state dir, and parallel first
 * use of a fresh home (kernel, default image and ssh key made once). The
 * kernel is a synthetic bzImage and the default image a tiny bundle: nothing
 * here is booted, so they only have to look right.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sh, TestHome } from '../helpers/home.js';
import { fakeBzImage } from '../helpers/fake-kernel.js';
import { makeTinyCatalog, useTinyCatalog } from '../helpers/tiny.js';

const tools = ['mkfs.ext4', 'debugfs', 'qemu-img', 'ssh-keygen', 'resize2fs'];
const missing = tools.filter(
  (b) => sh(['sh', '-c', `command -v ${b} || test -x /usr/sbin/${b} || test -x /sbin/${b}`]).code !== 0,
);
const skip = missing.length ? `missing host tools: ${missing.join(', ')}` : false;

const homes: TestHome[] = [];
let work: string;
let catalog: string;

function newHome(): TestHome {
  const h = new TestHome('banger-start-');
  homes.push(h);
  useTinyCatalog(h.root, catalog);
  return h;
}

before(async () => {
  if (skip) return;
  const h = new TestHome('banger-start-work-');
  homes.push(h);
  work = join(h.root, 'work');
  mkdirSync(work, { recursive: true });
  catalog = await makeTinyCatalog(work);
});

after(async () => {
  for (const h of homes) await h.cleanup();
});

test(
  'startup sweeps crash leftovers (tmp/, dirs without rows, old staging) and keeps a kernel named my.staging',
  { skip },
  async () => {
    const home = newHome();
    const kernelFile = join(home.root, 'vmlinuz');
    writeFileSync(kernelFile, fakeBzImage('9.9.7-mine'));
    let r = await home.banger(['kernel', 'import', 'my.staging', '--kernel', kernelFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await home.banger(['daemon', 'stop'])).code, 0);

    const s = home.stateDir;
    const orphans = [
      join(s, 'tmp', 'kernel-x-123', 'bzImage'),
      join(s, 'kernels', '.debian-bookworm-cloud.staging-scratch', 'tree', 'f'),
      join(s, 'kernels', '.gone.staging', 'bzImage'),
      join(s, 'kernels', 'no-row', 'manifest.json'),
      join(s, 'images', randomBytes(8).toString('hex'), 'rootfs.ext4'),
      join(s, 'images', `${randomBytes(8).toString('hex')}.staging`, 'tree', 'f'),
      join(s, 'vms', randomBytes(16).toString('hex'), 'root.qcow2'),
    ];
    for (const f of orphans) {
      mkdirSync(join(f, '..'), { recursive: true });
      writeFileSync(f, 'leftover');
    }
    r = await home.banger(['kernel', 'show', 'my.staging', '--json']);
    assert.equal(r.code, 0, `${r.stderr}\n${home.daemonLog().slice(-2000)}`);
    const dir = (JSON.parse(r.stdout) as { dir: string }).dir;
    assert.ok(existsSync(join(dir, 'manifest.json')), 'the kernel named my.staging keeps its files');
    assert.deepEqual(readdirSync(join(s, 'tmp')), [], 'tmp/ is emptied');
    assert.deepEqual(readdirSync(join(s, 'kernels')), ['my.staging']);
    assert.deepEqual(readdirSync(join(s, 'images')), []);
    assert.deepEqual(readdirSync(join(s, 'vms')), []);
    const log = home.daemonLog();
    for (const f of orphans) {
      const top = f
        .slice(s.length + 1)
        .split('/')
        .slice(0, 2)
        .join('/');
      assert.ok(log.includes(top), `the daemon log names ${top}`);
    }
  },
);

test('a second bangerd on the same state dir refuses to run and names the running one', { skip }, async () => {
  const home = newHome();
  assert.equal((await home.banger(['vm', 'list'])).code, 0);
  const firstPid = home.daemonPid();
  // Another runtime dir: only the state dir is shared, so the socket cannot be what stops it.
  const env = { ...home.env, XDG_RUNTIME_DIR: join(home.root, 'run2') };
  mkdirSync(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
  const second = await home.bangerd({ XDG_RUNTIME_DIR: env.XDG_RUNTIME_DIR }, 20_000);
  assert.notEqual(second.code, 0, 'the second daemon exits');
  assert.notEqual(second.code, -1, 'the second daemon exits by itself');
  assert.match(
    second.stderr,
    new RegExp(`already running.*${home.stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 's'),
  );
  assert.match(second.stderr, new RegExp(`pid ${firstPid}`));
  assert.ok(!existsSync(join(env.XDG_RUNTIME_DIR, 'banger', 'bangerd.sock')), 'the second daemon made no socket');
  const r = await home.banger(['daemon', 'status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { pid: number }).pid, firstPid, 'the first daemon still answers');
});

test(
  'parallel first use of a fresh home: every create succeeds; kernel, image and ssh key are made once',
  { skip },
  async () => {
    const home = newHome();
    const n = 4;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => home.banger(['vm', 'create', '--no-start', '--name', `p${i}`], 5 * 60_000)),
    );
    for (const [i, r] of results.entries())
      assert.equal(r.code, 0, `create p${i}: ${r.stderr}\n${home.daemonLog().slice(-3000)}`);
    const vms = JSON.parse((await home.banger(['vm', 'list', '--json'])).stdout) as { name: string; state: string }[];
    assert.deepEqual(vms.map((v) => v.name).sort(), ['p0', 'p1', 'p2', 'p3']);
    const images = JSON.parse((await home.banger(['image', 'list', '--json'])).stdout) as { name: string }[];
    assert.deepEqual(
      images.map((i) => i.name),
      ['tiny'],
    );
    const kernels = JSON.parse((await home.banger(['kernel', 'list', '--json'])).stdout) as { name: string }[];
    assert.deepEqual(
      kernels.map((k) => k.name),
      ['tiny-k'],
    );
    assert.equal(readdirSync(join(home.stateDir, 'images')).length, 1, 'one image directory');
    assert.deepEqual(readdirSync(join(home.stateDir, 'kernels')), ['tiny-k']);
    const pub = readFileSync(join(home.stateDir, 'ssh', 'id_ed25519.pub'), 'utf8');
    assert.match(pub, /^ssh-ed25519 /);
    assert.equal(
      (home.daemonLog().match(/bangerd ready/g) ?? []).length,
      1,
      'exactly one daemon served this state dir',
    );
    assert.equal((await home.banger(['vm', 'delete', 'p0', 'p1', 'p2', 'p3'])).code, 0);
  },
);
