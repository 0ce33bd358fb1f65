/**
 * Integration (network: loopback only — an HTTP server on 127.0.0.1 started
 * here): kernel catalog, tarball pulls over file:// and http://127.0.0.1,
 * verification failures, imports and removal, through the real CLI and daemon.
 * Kernels here are synthetic bzImages (never booted); booting the pulled
 * distribution kernel is covered by vm-run.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sh, TEST_CONFIG, TestHome } from '../helpers/home.js';
import { missingTools, requirements } from '../helpers/requirements.js';
import { fakeBzImage } from '../helpers/fake-kernel.js';

// Each tool is checked on its own (a shell `a && b || c` once let a missing zstd pass when mkfs.ext4 was in /usr/sbin).
const skip = requirements(missingTools(['tar', 'zstd', 'mkfs.ext4']), 'apt install tar zstd e2fsprogs');

let home: TestHome;
let server: Server;
let port = 0;
let work: string;

function makeTarball(
  name: string,
  files: Record<string, Buffer | string>,
  extraTarArgs: string[] = [],
): { path: string; sha: string } {
  const dir = join(work, `${name}.src`);
  mkdirSync(dir, { recursive: true });
  for (const [rel, data] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), data);
  }
  const out = join(work, `${name}.tar.zst`);
  const r = sh(['tar', '--zstd', '-cf', out, ...extraTarArgs, '-C', dir, '.']);
  assert.equal(r.code, 0, r.stderr);
  return { path: out, sha: createHash('sha256').update(readFileSync(out)).digest('hex') };
}

function writeCatalog(entries: { name: string; url: string; sha256: string }[]): void {
  const file = join(work, 'catalog.json');
  writeFileSync(file, JSON.stringify({ kernels: entries.map((e) => ({ ...e, distro: 'test', version: '9.9.9' })) }));
  mkdirSync(join(home.root, 'config', 'banger'), { recursive: true });
  writeFileSync(join(home.root, 'config', 'banger', 'config.toml'), `${TEST_CONFIG}catalog = "${file}"\n`);
}

before(async () => {
  home = new TestHome('banger-kit-');
  work = join(home.root, 'work');
  mkdirSync(work, { recursive: true });
  server = createServer((req, res) => {
    if (req.url === '/truncated.tar.zst') {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000));
      res.socket?.destroy();
      return;
    }
    try {
      const data = readFileSync(join(work, (req.url ?? '/').slice(1)));
      res.writeHead(200, { 'content-length': String(data.length) });
      res.end(data);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

after(async () => {
  server.close();
  await home.cleanup();
});

function kernelsDirEntries(): string[] {
  try {
    return readdirSync(join(home.stateDir, 'kernels'));
  } catch {
    return [];
  }
}

async function kernelNames(): Promise<string[]> {
  const r = await home.banger(['kernel', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { name: string }[]).map((k) => k.name);
}

test('the catalog lists the distribution kernel as available and file entries by name', { skip }, async () => {
  const good = makeTarball('good', { bzImage: fakeBzImage('9.9.9-test'), 'initrd.img': 'initrd' });
  writeCatalog([{ name: 'tiny-file', url: `file://${good.path}`, sha256: good.sha }]);
  const r = await home.banger(['kernel', 'list', '--available', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const entries = JSON.parse(r.stdout) as { name: string; kind: string; state: string }[];
  const distro = entries.find((e) => e.name === 'debian-bookworm-cloud');
  assert.equal(distro?.kind, 'distro');
  assert.equal(distro?.state, 'available');
  assert.equal(entries.find((e) => e.name === 'tiny-file')?.state, 'available');
});

test(
  'tarball kernels pull and verify from file:// and http://127.0.0.1; a second pull needs --force',
  { skip },
  async () => {
    const good = makeTarball('good2', { bzImage: fakeBzImage('9.9.9-test'), 'initrd.img': 'initrd' });
    writeCatalog([
      { name: 'tiny-file', url: `file://${good.path}`, sha256: good.sha },
      { name: 'tiny-http', url: `http://127.0.0.1:${port}/good2.tar.zst`, sha256: good.sha },
    ]);
    await home.banger(['daemon', 'stop']);
    for (const name of ['tiny-file', 'tiny-http']) {
      const r = await home.banger(['kernel', 'pull', name]);
      assert.equal(r.code, 0, r.stderr);
      const show = await home.banger(['kernel', 'show', name, '--json']);
      const k = JSON.parse(show.stdout) as { version: string; format: string; sha256: string; initrd_kind: string };
      assert.equal(k.version, '9.9.9-test');
      assert.equal(k.format, 'bzImage');
      assert.equal(k.sha256, createHash('sha256').update(fakeBzImage('9.9.9-test')).digest('hex'));
      assert.equal(k.initrd_kind, 'external');
    }
    const again = await home.banger(['kernel', 'pull', 'tiny-http']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already pulled/);
    assert.match(again.stderr, /--force/);
    const forced = await home.banger(['kernel', 'pull', 'tiny-http', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    for (const name of ['tiny-file', 'tiny-http']) assert.equal((await home.banger(['kernel', 'rm', name])).code, 0);
    assert.deepEqual(await kernelNames(), []);
  },
);

test('a wrong sha256, a truncated download and a ../evil entry fail clearly and leave nothing', { skip }, async () => {
  const good = makeTarball('good3', { bzImage: fakeBzImage('9.9.9-test') });
  const evilDir = join(work, 'evil.src', 'inner');
  mkdirSync(evilDir, { recursive: true });
  writeFileSync(join(work, 'evil.src', 'evil'), 'x');
  const evil = join(work, 'evil.tar.zst');
  // -P keeps the leading "../" that GNU tar would otherwise strip.
  assert.equal(sh(['tar', '-P', '--zstd', '-cf', evil, '-C', evilDir, '../evil']).code, 0);
  assert.match(sh(['tar', '-P', '--zstd', '-tf', evil]).stdout, /^\.\.\/evil$/m);
  const evilSha = createHash('sha256').update(readFileSync(evil)).digest('hex');
  writeCatalog([
    { name: 'bad-sha', url: `file://${good.path}`, sha256: '0'.repeat(64) },
    { name: 'truncated', url: `http://127.0.0.1:${port}/truncated.tar.zst`, sha256: good.sha },
    { name: 'evil', url: `http://127.0.0.1:${port}/evil.tar.zst`, sha256: evilSha },
  ]);
  await home.banger(['daemon', 'stop']);
  const cases: [string, RegExp][] = [
    ['bad-sha', /sha256 mismatch/],
    ['truncated', /truncated/],
    ['evil', /\.\.\/evil/],
  ];
  for (const [name, re] of cases) {
    const r = await home.banger(['kernel', 'pull', name]);
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, re, name);
    assert.deepEqual(await kernelNames(), [], `${name}: no row`);
    assert.deepEqual(kernelsDirEntries(), [], `${name}: no directory`);
  }
  for (const p of [join(home.stateDir, 'evil'), join(home.stateDir, 'kernels', 'evil'), join(home.root, 'evil')]) {
    assert.equal(sh(['test', '-e', p]).code, 1, `nothing written at ${p}`);
  }
});

test('kernel import from explicit paths and from a directory; bad paths fail clearly', { skip }, async () => {
  const dir = join(work, 'import-dir');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'vmlinuz'), fakeBzImage('9.9.8-imp'));
  writeFileSync(join(dir, 'initrd.img'), 'initrd');
  let r = await home.banger([
    'kernel',
    'import',
    'imp-paths',
    '--kernel',
    join(dir, 'vmlinuz'),
    '--initrd',
    join(dir, 'initrd.img'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await home.banger(['kernel', 'import', 'imp-dir', '--from', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await kernelNames()).sort(), ['imp-dir', 'imp-paths']);
  r = await home.banger(['kernel', 'import', 'imp-dir', '--from', dir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /already exists/);
  r = await home.banger(['kernel', 'import', 'nope', '--kernel', join(dir, 'missing')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /does not exist/);
  r = await home.banger(['kernel', 'import', 'notakernel', '--kernel', join(dir, 'initrd.img')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /neither a bzImage nor an ELF/);
  r = await home.banger(['kernel', 'import', 'bad/name', '--kernel', join(dir, 'vmlinuz')]);
  assert.equal(r.code, 1);
  assert.deepEqual((await kernelNames()).sort(), ['imp-dir', 'imp-paths']);
  for (const n of ['imp-dir', 'imp-paths']) assert.equal((await home.banger(['kernel', 'rm', n])).code, 0);
  assert.deepEqual(kernelsDirEntries(), []);
});
