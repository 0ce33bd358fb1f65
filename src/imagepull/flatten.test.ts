import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { AppError } from '../errors.js';
import { Flattener, hostMode, normalizeEntryPath, whiteoutOf, type EntryMeta, type FlattenOptions } from './flatten.js';

interface Spec {
  name: string;
  type?: 'file' | 'link' | 'symlink' | 'directory' | 'character-device' | 'block-device' | 'fifo';
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  body?: string;
  mtime?: Date;
  pax?: Record<string, string>;
}

const MTIME = new Date('2024-01-02T03:04:05Z');
const isRoot = process.getuid?.() === 0;

async function tarBuffer(entries: Spec[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    const { body, ...header } = e;
    p.entry({ mtime: MTIME, mode: e.type === 'directory' ? 0o755 : 0o644, ...header }, body ?? '');
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function tarStream(entries: Spec[]): Promise<Readable> {
  return Readable.from([await tarBuffer(entries)]);
}

interface Sandbox {
  base: string;
  root: string;
  outside: string;
}

/** tmp/{root,outside}, removed after the test; outside holds 'secret' so escapes are observable. */
function sandbox(t: TestContext): Sandbox {
  const base = mkdtempSync(join(tmpdir(), 'banger-flatten-'));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), 'untouched');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  return { base, root, outside };
}

async function flatten(root: string, layers: Spec[][], opts: Partial<FlattenOptions> = {}): Promise<Flattener> {
  const f = new Flattener(root, { applyOwnership: false, ...opts });
  for (const [i, layer] of layers.entries()) await f.applyLayer(await tarStream(layer), `layer ${i + 1}`);
  return f;
}

const file = (name: string, body = name, extra: Partial<Spec> = {}): Spec => ({ name, type: 'file', body, ...extra });
const dir = (name: string, extra: Partial<Spec> = {}): Spec => ({ name, type: 'directory', ...extra });

test('normalizeEntryPath', () => {
  const cases: [string, ReturnType<typeof normalizeEntryPath>][] = [
    ['./usr/bin/sudo', { rel: 'usr/bin/sudo' }],
    ['usr/lib/', { rel: 'usr/lib' }],
    ['./', { rel: '' }],
    ['.', { rel: '' }],
    ['a//b/./c', { rel: 'a/b/c' }],
    ['/etc/passwd', { reason: 'absolute path' }],
    ['../evil', { reason: "'..' component" }],
    ['a/../../x', { reason: "'..' component" }],
    ['a\nb', { reason: 'control character in name' }],
    ['a\rb', { reason: 'control character in name' }],
    ['a\u007fb', { reason: 'control character in name' }],
    ['..data', { rel: '..data' }],
  ];
  for (const [name, want] of cases) assert.deepEqual(normalizeEntryPath(name), want, name);
});

test('whiteoutOf', () => {
  const cases: [string, ReturnType<typeof whiteoutOf>][] = [
    ['etc/passwd', undefined],
    ['etc/.wh.passwd', { kind: 'remove', target: 'etc/passwd' }],
    ['.wh.etc', { kind: 'remove', target: 'etc' }],
    ['var/cache/.wh..wh..opq', { kind: 'opaque', dir: 'var/cache' }],
    ['.wh..wh..opq', { kind: 'opaque', dir: '' }],
    ['a/.wh..wh.plnk', { kind: 'ignored' }],
    ['a/.wh.', { kind: 'invalid' }],
    ['a/.wh..', { kind: 'invalid' }],
    ['a/.wh...', { kind: 'invalid' }],
  ];
  for (const [rel, want] of cases) assert.deepEqual(whiteoutOf(rel), want, rel);
});

test('hostMode', () => {
  const cases: [number, boolean, boolean, number][] = [
    [0o4755, false, true, 0o4755],
    [0o4755, false, false, 0o755],
    [0o0000, false, false, 0o600],
    [0o0555, true, false, 0o755],
    [0o1777, true, false, 0o1777],
    [0o2750, true, true, 0o2750],
  ];
  for (const [mode, isDir, exact, want] of cases) assert.equal(hostMode(mode, isDir, exact), want, mode.toString(8));
});

test('extracts files, dirs and symlinks with metadata', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [
    [
      dir('./'),
      dir('./usr/', { mode: 0o755 }),
      dir('./usr/bin/'),
      file('./usr/bin/sudo', 'sudo-binary', { mode: 0o4755 }),
      file('./etc/shadow', 'x', { mode: 0o640, gid: 42 }),
      { name: './sbin/init', type: 'symlink', linkname: '/lib/systemd/systemd', mode: 0o777 },
      { name: './usr/lib/os-release', type: 'symlink', linkname: '../../etc/os-release', mode: 0o777 },
    ],
  ]);
  const { meta, bytes, skipped } = f.result();
  const want: [string, EntryMeta][] = [
    ['usr', { uid: 0, gid: 0, mode: 0o755, type: 'dir' }],
    ['usr/bin', { uid: 0, gid: 0, mode: 0o755, type: 'dir' }],
    ['usr/bin/sudo', { uid: 0, gid: 0, mode: 0o4755, type: 'file' }],
    ['etc', { uid: 0, gid: 0, mode: 0o755, type: 'dir' }],
    ['etc/shadow', { uid: 0, gid: 42, mode: 0o640, type: 'file' }],
    ['sbin', { uid: 0, gid: 0, mode: 0o755, type: 'dir' }],
    ['sbin/init', { uid: 0, gid: 0, mode: 0o777, type: 'symlink' }],
    ['usr/lib', { uid: 0, gid: 0, mode: 0o755, type: 'dir' }],
    ['usr/lib/os-release', { uid: 0, gid: 0, mode: 0o777, type: 'symlink' }],
  ];
  assert.deepEqual(new Map(want), meta);
  assert.equal(bytes, 'sudo-binary'.length + 1);
  assert.deepEqual(skipped, []);
  assert.equal(readFileSync(join(box.root, 'usr/bin/sudo'), 'utf8'), 'sudo-binary');
  assert.equal(readlinkSync(join(box.root, 'sbin/init')), '/lib/systemd/systemd');
  assert.equal(readlinkSync(join(box.root, 'usr/lib/os-release')), '../../etc/os-release');
  assert.equal(statSync(join(box.root, 'usr/bin/sudo')).mtime.getTime(), MTIME.getTime());
  assert.equal(statSync(join(box.root, 'usr')).mtime.getTime(), MTIME.getTime());
  // Not root: the host copy stays owner-accessible and loses setuid; meta keeps the truth.
  if (!isRoot) assert.equal(statSync(join(box.root, 'usr/bin/sudo')).mode & 0o7777, 0o755);
});

test('PAX uid/gid records win over the ustar fields', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [
    [file('home/u/f', 'x', { uid: 7, gid: 8, pax: { uid: '100000', gid: '100001' } })],
  ]);
  assert.deepEqual(f.result().meta.get('home/u/f'), { uid: 100000, gid: 100001, mode: 0o644, type: 'file' });
});

test('a malformed PAX uid is rejected', async (t) => {
  const box = sandbox(t);
  await assert.rejects(flatten(box.root, [[file('f', 'x', { pax: { uid: '-1' } })]]), (err: unknown) => {
    assert.ok(err instanceof AppError);
    assert.equal(err.code, 'bad_request');
    assert.match(err.message, /invalid PAX uid\/gid/);
    return true;
  });
});

test('applyOwnership chowns and chmods for real (root only)', async (t) => {
  if (!isRoot) return t.skip('needs root');
  const box = sandbox(t);
  await flatten(
    box.root,
    [
      [
        dir('ro', { mode: 0o555, uid: 5, gid: 6 }),
        file('ro/inside', 'x', { mode: 0o600, uid: 1000, gid: 1000 }),
        file('usr/bin/sudo', 'x', { mode: 0o4755 }),
        file('big', 'x', { pax: { uid: '100000', gid: '100001' } }),
        { name: 'lnk', type: 'symlink', linkname: '/nowhere', uid: 33, gid: 34 },
      ],
      [file('ro/later', 'y')],
    ],
    { applyOwnership: true },
  );
  const st = (p: string) => lstatSync(join(box.root, p));
  assert.equal(st('ro').mode & 0o7777, 0o555);
  assert.deepEqual([st('ro').uid, st('ro').gid], [5, 6]);
  assert.deepEqual([st('ro/inside').uid, st('ro/inside').gid, st('ro/inside').mode & 0o7777], [1000, 1000, 0o600]);
  assert.equal(st('usr/bin/sudo').mode & 0o7777, 0o4755);
  assert.deepEqual([st('big').uid, st('big').gid], [100000, 100001]);
  assert.deepEqual([st('lnk').uid, st('lnk').gid], [33, 34]);
  assert.ok(existsSync(join(box.root, 'ro/later')));
});

test('read-only directories still receive their children (unprivileged host modes)', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [[dir('ro', { mode: 0o555 }), file('ro/a')], [file('ro/b')]]);
  assert.equal(f.result().meta.get('ro')?.mode, 0o555);
  assert.equal(statSync(join(box.root, 'ro')).mode & 0o777, 0o755);
  assert.deepEqual(readdirSync(join(box.root, 'ro')).sort(), ['a', 'b']);
});

test('hardlinks share the inode and the target metadata', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [
    [
      file('usr/bin/perl5.36', 'perl', { mode: 0o755, uid: 3 }),
      { name: 'usr/bin/perl', type: 'link', linkname: './usr/bin/perl5.36', mode: 0o600 },
    ],
  ]);
  const a = statSync(join(box.root, 'usr/bin/perl5.36'));
  const b = statSync(join(box.root, 'usr/bin/perl'));
  assert.equal(a.ino, b.ino);
  assert.equal(a.nlink, 2);
  assert.deepEqual(f.result().meta.get('usr/bin/perl'), { uid: 3, gid: 0, mode: 0o755, type: 'hardlink' });
  assert.equal(f.result().bytes, 4);
});

test('a hardlink whose primary is removed becomes the primary', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [
    [
      file('a', 'data', { uid: 9 }),
      { name: 'b', type: 'link', linkname: 'a' },
      { name: 'c', type: 'link', linkname: 'b' },
    ],
    [file('.wh.a', '')],
  ]);
  const { meta } = f.result();
  assert.equal(meta.has('a'), false);
  assert.deepEqual(meta.get('b'), { uid: 9, gid: 0, mode: 0o644, type: 'file' });
  assert.equal(meta.get('c')?.type, 'hardlink');
});

test('hardlink primaries are re-elected each time the current one is removed', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [
    [file('a', 'data', { uid: 9 }), ...['b', 'c', 'd'].map((n) => ({ name: n, type: 'link' as const, linkname: 'a' }))],
    [file('.wh.a', '')],
    [file('.wh.b', '')],
    [file('x', 'new'), { name: 'd', type: 'link', linkname: 'x' }],
  ]);
  const { meta } = f.result();
  assert.deepEqual([...meta.keys()].sort(), ['c', 'd', 'x']);
  assert.deepEqual(meta.get('c'), { uid: 9, gid: 0, mode: 0o644, type: 'file' });
  assert.equal(meta.get('d')?.type, 'hardlink');
  assert.equal(statSync(join(box.root, 'd')).ino, statSync(join(box.root, 'x')).ino);
  assert.equal(readFileSync(join(box.root, 'c'), 'utf8'), 'data');
});

test('whiteouts remove lower-layer paths from disk and meta', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [
    [file('etc/motd'), file('etc/keep'), dir('var/cache/apt'), file('var/cache/apt/pkgcache.bin')],
    [file('etc/.wh.motd', ''), file('var/cache/.wh.apt', ''), file('.wh.nonexistent', ''), file('nope/.wh.x', '')],
  ]);
  const { meta } = f.result();
  assert.equal(existsSync(join(box.root, 'etc/motd')), false);
  assert.equal(existsSync(join(box.root, 'etc/.wh.motd')), false);
  assert.equal(existsSync(join(box.root, 'var/cache/apt')), false);
  assert.ok(existsSync(join(box.root, 'etc/keep')));
  assert.deepEqual([...meta.keys()].sort(), ['etc', 'etc/keep', 'var', 'var/cache']);
});

test('a whiteout does not hide an entry of its own layer', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [[file('a', 'old')], [file('a', 'new'), file('.wh.a', '')]]);
  assert.equal(readFileSync(join(box.root, 'a'), 'utf8'), 'new');
  assert.ok(f.result().meta.has('a'));
});

test('an opaque whiteout clears lower children but keeps the dir and same-layer entries', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [
    [dir('opt', { mode: 0o750 }), file('opt/old1'), dir('opt/sub'), file('opt/sub/old2'), file('other')],
    [dir('opt', { mode: 0o755 }), dir('opt/sub'), file('opt/sub/new'), file('opt/.wh..wh..opq', ''), file('opt/new2')],
  ]);
  assert.deepEqual(readdirSync(join(box.root, 'opt')).sort(), ['new2', 'sub']);
  assert.deepEqual(readdirSync(join(box.root, 'opt/sub')), ['new']);
  assert.deepEqual([...f.result().meta.keys()].sort(), ['opt', 'opt/new2', 'opt/sub', 'opt/sub/new', 'other']);
  assert.equal(f.result().meta.get('opt')?.mode, 0o755);
});

test('later layers replace earlier entries', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [
    [
      file('etc/hostname', 'old'),
      { name: 'etc/hostname.bak', type: 'link', linkname: 'etc/hostname' },
      dir('x'),
      file('x/child'),
      file('y'),
    ],
    [
      file('etc/hostname', 'new', { mode: 0o600 }),
      file('x', 'now a file'),
      dir('y'),
      { name: 'z', type: 'symlink', linkname: 'y' },
    ],
    [file('z', 'file replaces symlink')],
  ]);
  const { meta } = f.result();
  assert.equal(readFileSync(join(box.root, 'etc/hostname'), 'utf8'), 'new');
  assert.equal(readFileSync(join(box.root, 'etc/hostname.bak'), 'utf8'), 'old', 'old inode untouched');
  assert.equal(meta.get('etc/hostname')?.mode, 0o600);
  assert.equal(meta.get('etc/hostname.bak')?.type, 'file', 'orphaned hardlink is now its own primary');
  assert.equal(readFileSync(join(box.root, 'x'), 'utf8'), 'now a file');
  assert.equal(meta.has('x/child'), false);
  assert.ok(statSync(join(box.root, 'y')).isDirectory());
  assert.equal(meta.get('y')?.type, 'dir');
  assert.ok(lstatSync(join(box.root, 'z')).isFile());
  assert.equal(readdirSync(box.root).includes('y'), true);
});

test('device nodes and fifos are skipped, not created', async (t) => {
  const box = sandbox(t);
  const f = await flatten(box.root, [
    [file('dev/console', 'was a file')],
    [
      { name: 'dev/console', type: 'character-device', mode: 0o600 },
      { name: 'dev/sda', type: 'block-device', mode: 0o660 },
      { name: 'run/initctl', type: 'fifo', mode: 0o600 },
    ],
  ]);
  const { meta, skipped } = f.result();
  assert.deepEqual(skipped, [
    'layer 2: dev/console (character-device)',
    'layer 2: dev/sda (block-device)',
    'layer 2: run/initctl (fifo)',
  ]);
  assert.deepEqual(readdirSync(join(box.root, 'dev')), []);
  assert.equal(existsSync(join(box.root, 'run/initctl')), false);
  assert.deepEqual([...meta.keys()].sort(), ['dev', 'run']);
});

test('the skip predicate drops paths entirely', async (t) => {
  const box = sandbox(t);
  const f = await flatten(
    box.root,
    [
      [
        file('etc/ssh/ssh_host_rsa_key', 'secret'),
        file('etc/ssh/sshd_config'),
        { name: 'etc/ssh/k2', type: 'link', linkname: 'etc/ssh/ssh_host_rsa_key' },
      ],
    ],
    { skip: (p) => p.startsWith('etc/ssh/ssh_host_') },
  );
  assert.deepEqual(readdirSync(join(box.root, 'etc/ssh')), ['sshd_config']);
  assert.equal(f.result().meta.has('etc/ssh/ssh_host_rsa_key'), false);
});

test('unsafe entries are rejected and nothing escapes the root', async (t) => {
  const link = (name: string, linkname: string): Spec => ({ name, type: 'link', linkname });
  const sym = (name: string, linkname: string): Spec => ({ name, type: 'symlink', linkname });
  const cases: { name: string; layer: (outside: string) => Spec[]; path: string; reason: RegExp }[] = [
    { name: 'dotdot', layer: () => [file('../evil')], path: '../evil', reason: /'\.\.' component/ },
    { name: 'absolute', layer: () => [file('/abs')], path: '/abs', reason: /absolute path/ },
    { name: 'nested dotdot', layer: () => [file('a/../../x')], path: 'a/../../x', reason: /'\.\.' component/ },
    {
      name: 'write through symlink',
      layer: (o) => [sym('link', o), file('link/passwd', 'pwned')],
      path: 'link/passwd',
      reason: /path goes through a symlink/,
    },
    {
      name: 'write through /etc symlink',
      layer: () => [sym('link', '/etc'), file('link/banger-flatten-test', 'pwned')],
      path: 'link/banger-flatten-test',
      reason: /path goes through a symlink/,
    },
    {
      name: 'mkdir through symlink',
      layer: (o) => [sym('link', o), dir('link/sub/')],
      path: 'link/sub/',
      reason: /path goes through a symlink/,
    },
    {
      name: 'hardlink dotdot',
      layer: () => [link('h', '../outside/secret')],
      path: 'h',
      reason: /hardlink target "\.\.\/outside\/secret": '\.\.' component/,
    },
    {
      name: 'hardlink absolute',
      layer: () => [link('h', '/etc/passwd')],
      path: 'h',
      reason: /hardlink target "\/etc\/passwd": absolute path/,
    },
    {
      name: 'hardlink through symlink',
      layer: (o) => [sym('link', o), link('h', 'link/secret')],
      path: 'h',
      reason: /hardlink target "link\/secret": path goes through a symlink/,
    },
    {
      name: 'hardlink to missing',
      layer: () => [link('h', 'nope')],
      path: 'h',
      reason: /not an existing regular file/,
    },
    {
      name: 'hardlink to dir',
      layer: () => [dir('d'), link('h', 'd')],
      path: 'h',
      reason: /not an existing regular file/,
    },
    {
      name: 'hardlink to symlink',
      layer: (o) => [sym('s', `${o}/secret`), link('h', 's')],
      path: 'h',
      reason: /not an existing regular file/,
    },
    { name: 'newline', layer: () => [file('a\nb')], path: 'a\nb', reason: /control character/ },
    {
      name: 'whiteout through symlink',
      layer: (o) => [sym('link', o), file('link/.wh.secret', '')],
      path: 'link/.wh.secret',
      reason: /path goes through a symlink/,
    },
    {
      name: 'opaque through symlink',
      layer: (o) => [sym('link', o), file('link/.wh..wh..opq', '')],
      path: 'link/.wh..wh..opq',
      reason: /path goes through a symlink/,
    },
    { name: 'bad whiteout', layer: () => [file('a/.wh...', '')], path: 'a/.wh...', reason: /invalid whiteout/ },
    { name: 'root replaced', layer: () => [sym('./', '/')], path: './', reason: /replaces the root/ },
    {
      name: 'parent is a file',
      layer: () => [file('f'), file('f/x')],
      path: 'f/x',
      reason: /parent is not a directory/,
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (sub) => {
      const box = sandbox(sub);
      const layer = [...c.layer(box.outside), file('after')];
      await assert.rejects(flatten(box.root, [layer]), (err: unknown) => {
        assert.ok(err instanceof AppError, String(err));
        assert.equal(err.code, 'bad_request');
        assert.ok(err.message.startsWith(`unsafe entry in layer 1: ${JSON.stringify(c.path)} (`), err.message);
        assert.match(err.message, c.reason);
        assert.match(err.hint ?? '', /rebuild it without that entry/);
        return true;
      });
      assert.deepEqual(readdirSync(box.base).sort(), ['outside', 'root']);
      assert.deepEqual(readdirSync(box.outside), ['secret']);
      assert.equal(readFileSync(join(box.outside, 'secret'), 'utf8'), 'untouched');
      assert.equal(existsSync('/etc/banger-flatten-test'), false);
      assert.equal(existsSync(join(box.root, 'after')), false, 'processing stopped');
    });
  }
});

test('a truncated archive fails', async (t) => {
  const box = sandbox(t);
  const buf = await tarBuffer([file('big', 'x'.repeat(5000))]);
  const f = new Flattener(box.root, { applyOwnership: false });
  await assert.rejects(f.applyLayer(Readable.from([buf.subarray(0, 2048)]), 'layer 1'), (err: unknown) => {
    assert.ok(err instanceof AppError);
    assert.equal(err.code, 'operation_failed');
    assert.match(err.message, /layer 1/);
    return true;
  });
});

test('an input stream error rejects', async (t) => {
  const box = sandbox(t);
  const input = new PassThrough();
  const f = new Flattener(box.root, { applyOwnership: false });
  const done = f.applyLayer(input, 'layer 1');
  input.write((await tarBuffer([file('a', 'x'.repeat(2000))])).subarray(0, 1024));
  input.destroy(new Error('registry connection reset'));
  await assert.rejects(done, /registry connection reset/);
});

test('abort cancels a running layer and destroys the input', async (t) => {
  const box = sandbox(t);
  const ac = new AbortController();
  const input = new PassThrough();
  const f = new Flattener(box.root, { applyOwnership: false, signal: ac.signal });
  const done = f.applyLayer(input, 'layer 1');
  const buf = await tarBuffer([file('a', 'x'.repeat(100_000))]);
  input.write(buf.subarray(0, 4096));
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(done, (err: unknown) => err instanceof AppError && err.code === 'cancelled');
  assert.ok(input.destroyed);
  await assert.rejects(
    f.applyLayer(await tarStream([]), 'layer 2'),
    (err: unknown) => err instanceof AppError && err.code === 'cancelled',
  );
});

test('large files stream through with bounded memory', async (t) => {
  const box = sandbox(t);
  const size = 32 * 1024 * 1024;
  // The archive is produced lazily while it is extracted.
  const p = pack();
  const entry = p.entry({ name: 'big', size, mtime: MTIME });
  p.finalize();
  const chunk = Buffer.alloc(1024 * 1024);
  (async () => {
    for (let i = 0; i < size / chunk.length; i++) {
      if (!entry.write(chunk)) await new Promise<void>((r) => entry.once('drain', () => r()));
    }
    entry.end(undefined);
  })().catch(() => undefined);
  const f = new Flattener(box.root, { applyOwnership: false });
  await f.applyLayer(Readable.from(p as AsyncIterable<Buffer>), 'layer 1');
  assert.equal(statSync(join(box.root, 'big')).size, size);
  assert.equal(f.result().bytes, size);
});
