/*
 * LayerMerger (top-down, straight into an ext4 image) against the Flattener
 * (bottom-up, into a host tree) on small multi-layer images: the same paths,
 * types, modes, owners, link counts, symlink targets and contents.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { readTar, type TarEntry } from '../archive/tar-reader.js';
import { Ext4Writer } from '../ext4/writer/writer.js';
import { NodeRunner } from '../system/node-runner.js';
import { Flattener } from './flatten.js';
import { LayerMerger } from './layer-merge.js';

interface Spec {
  name: string;
  type?: 'file' | 'link' | 'symlink' | 'directory' | 'character-device' | 'fifo';
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  body?: string;
  pax?: Record<string, string>;
}

const runner = new NodeRunner();
const isRoot = process.getuid?.() === 0;

async function tarBuffer(entries: Spec[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    const { body, ...header } = e;
    p.entry({ mtime: new Date(1700000000000), mode: e.type === 'directory' ? 0o755 : 0o644, ...header }, body ?? '');
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function tmp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'merge-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Layers bottom-up into an image through the merger (which takes them top-down). */
async function merged(
  t: TestContext,
  layers: Buffer[],
  skip?: (p: string) => boolean,
  reread = false,
): Promise<{ img: string }> {
  const img = join(tmp(t), 'fs.img');
  const w = await Ext4Writer.create(img, { sizeBytes: 32 * 2 ** 20, inodes: 256, label: 'm', now: 1700000000 });
  try {
    const m = new LayerMerger(w, { now: 1700000000, ...(skip ? { skip } : {}) });
    for (let i = layers.length - 1; i >= 0; i--) {
      const read = (): AsyncIterable<TarEntry> => readTar(Readable.from([layers[i] as Buffer]), `layer ${i + 1}`);
      await m.applyLayer(read(), `layer ${i + 1}`, reread ? read : undefined);
    }
    await w.finish();
  } catch (e) {
    await w.abort();
    throw e;
  }
  return { img };
}

type Row = [path: string, type: string, mode: string, uid: number, gid: number, links: number, what: string];

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** Every path of a host tree (the Flattener's, or an rdump of the image), as comparable rows. */
function rows(root: string, nlink?: (rel: string) => number): Row[] {
  const out: Row[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const p = join(root, r);
      const st = lstatSync(p);
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      const what = type === 'file' ? sha(readFileSync(p)) : type === 'symlink' ? readlinkSync(p) : '';
      const links = type === 'file' ? (nlink?.(r) ?? st.nlink) : 0;
      out.push([r, type, (st.mode & 0o7777).toString(8), st.uid, st.gid, links, what]);
      if (type === 'dir') walk(r);
    }
  };
  walk('');
  return out;
}

/** The image's tree: rdump for names, contents and link targets; modes, owners and link counts from debugfs stat. */
async function imageRows(t: TestContext, img: string): Promise<Row[]> {
  const out = join(tmp(t), 'rdump');
  mkdirSync(out);
  await runner.check(['debugfs', '-R', `rdump / ${out}`, img]);
  const result: Row[] = [];
  for (const [p, type, , , , , what] of rows(out)) {
    if (p === 'lost+found' || p.startsWith('lost+found/')) continue;
    const st = (await runner.check(['debugfs', '-R', `stat "/${p}"`, img])).stdout;
    const num = (re: RegExp): number => Number(re.exec(st)?.[1]);
    const mode = (/Mode:\s+0*(\d+)/.exec(st)?.[1] ?? '?').replace(/^$/, '0');
    const links = type === 'file' ? num(/Links: (\d+)/) : 0;
    result.push([p, type, mode, num(/User:\s+(\d+)/), num(/Group:\s+(\d+)/), links, what]);
  }
  return result;
}

async function flattened(t: TestContext, layers: Buffer[]): Promise<Row[]> {
  const root = join(tmp(t), 'tree');
  mkdirSync(root);
  const f = new Flattener(root, { applyOwnership: true });
  for (const [i, l] of layers.entries()) await f.applyLayer(Readable.from([l]), `layer ${i + 1}`);
  return rows(root);
}

const LAYERS: Spec[][] = [
  [
    { name: 'etc/', type: 'directory' },
    { name: 'etc/passwd', body: 'root:x:0:0' },
    { name: 'etc/shadow', body: 'secret', mode: 0o640, gid: 42 },
    { name: 'opt/', type: 'directory', mode: 0o750 },
    { name: 'opt/a', body: 'a' },
    { name: 'opt/sub/', type: 'directory' },
    { name: 'opt/sub/x', body: 'x' },
    { name: 'var/gone', body: 'gone' },
    { name: 'usr/', type: 'directory' },
    { name: 'usr/bin/', type: 'directory' },
    { name: 'usr/bin/tool', body: 'tool v1', mode: 0o4755, uid: 0, gid: 0 },
    { name: 'usr/bin/tool2', type: 'link', linkname: 'usr/bin/tool' },
    { name: 'bin', type: 'symlink', linkname: 'usr/bin' },
    { name: 'swap', body: 'was a file' },
    { name: 'todir/', type: 'directory' },
    { name: 'todir/inner', body: 'inner' },
    { name: 'dev/null', type: 'character-device' },
    { name: 'dev/fifo', type: 'fifo' },
    { name: 'home/', type: 'directory', mode: 0o711 },
  ],
  [
    { name: 'opt/.wh..wh..opq' },
    { name: 'opt/new', body: 'new', uid: 1000, gid: 1000 },
    { name: 'var/.wh.gone' },
    { name: 'etc/passwd', body: 'root:x:0:0\nu:x:1000', mode: 0o600 },
    { name: 'swap/', type: 'directory', mode: 0o700 },
    { name: 'swap/f', body: 'f' },
    { name: 'todir', type: 'symlink', linkname: `${'t'.repeat(80)}/etc` },
    { name: 'home/u/.profile', body: 'PS1=$', uid: 1000, gid: 1000 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
  ],
  [
    { name: 'etc/.wh.shadow' },
    { name: 'etc/', type: 'directory', mode: 0o755, pax: { 'SCHILY.xattr.user.k': 'v' } },
    { name: 'srv/data/', type: 'directory', uid: 33, gid: 33, mode: 0o2770 },
    { name: 'srv/data/f', body: 'data', uid: 33, gid: 33 },
    { name: 'srv/data/f2', type: 'link', linkname: 'srv/data/f' },
    { name: 'srv/data/', type: 'directory', uid: 33, gid: 33, mode: 0o2775 },
  ],
];

test('three layers: the merged image holds exactly what the Flattener makes', async (t) => {
  if (!isRoot) return t.skip('needs root (the Flattener chowns, rdump keeps owners)');
  const layers = await Promise.all(LAYERS.map(tarBuffer));
  const want = await flattened(t, layers);
  const { img } = await merged(t, layers);
  const fsck = await runner.run(['e2fsck', '-fn', img]);
  assert.equal(fsck.code, 0, fsck.stdout);
  assert.deepEqual(await imageRows(t, img), want);
  // Sanity of the scenario itself: what must and must not be there.
  const paths = want.map((r) => r[0]);
  for (const p of ['opt/new', 'swap/f', 'home/u/.profile', 'srv/data/f2', 'usr/bin/tool2'])
    assert.ok(paths.includes(p), p);
  for (const p of ['opt/a', 'opt/sub', 'var/gone', 'etc/shadow', 'todir/inner', 'dev/null'])
    assert.ok(!paths.includes(p), p);
  // The merger also keeps what the Flattener cannot: the PAX xattr of the top layer's etc/.
  assert.match((await runner.check(['debugfs', '-R', 'ea_list /etc', img])).stdout, /user\.k \(1\) = "v"/);
});

test('the skip predicate drops paths (and links to them) as in the Flattener', async (t) => {
  const layers = [
    await tarBuffer([
      { name: 'etc/ssh/key', body: 'k' },
      { name: 'etc/ssh/key-link', type: 'link', linkname: 'etc/ssh/key' },
      { name: 'etc/ok', body: 'ok' },
    ]),
  ];
  const { img } = await merged(t, layers, (p) => p === 'etc/ssh/key');
  const ls = (await runner.check(['debugfs', '-R', 'ls -p /etc/ssh', img])).stdout;
  assert.doesNotMatch(ls, /key/);
  assert.equal((await runner.check(['debugfs', '-R', 'cat /etc/ok', img])).stdout, 'ok');
});

test('hard links to files a higher layer replaced or removed keep the lower data (layer read twice)', async (t) => {
  const layers = await Promise.all(
    [
      [
        { name: 'f', body: 'old', mode: 0o4755 },
        { name: 'h', type: 'link', linkname: 'f' },
        { name: 'd/g', body: 'gone' },
        { name: 'h2', type: 'link', linkname: 'd/g' },
        { name: 'h3', type: 'link', linkname: 'h2' },
        { name: 'keep', body: 'k' },
      ],
      [{ name: 'f', body: 'new' }, { name: '.wh.d' }],
    ].map((l) => tarBuffer(l as Spec[])),
  );
  const { img } = await merged(t, layers, undefined, true);
  const fsck = await runner.run(['e2fsck', '-fn', img]);
  assert.equal(fsck.code, 0, fsck.stdout);
  const cat = async (p: string): Promise<string> => (await runner.check(['debugfs', '-R', `cat ${p}`, img])).stdout;
  assert.equal(await cat('/f'), 'new');
  assert.equal(await cat('/h'), 'old');
  assert.equal(await cat('/h2'), 'gone');
  assert.equal(await cat('/h3'), 'gone');
  assert.match((await runner.check(['debugfs', '-R', 'stat /h', img])).stdout, /Mode:\s+04755[\s\S]*Links: 1/);
  assert.match((await runner.check(['debugfs', '-R', 'stat /h2', img])).stdout, /Links: 2/);
  assert.doesNotMatch((await runner.check(['debugfs', '-R', 'ls /', img])).stdout, /\bd\b/);
});

test('refusals: unsafe names, links and layouts, and the top-down open cases, each naming layer and entry', async (t) => {
  const cases: Array<[string, Spec[][], RegExp]> = [
    ['dotdot', [[{ name: '../x', body: 'x' }]], /layer 1: "\.\.\/x" \('\.\.' component\)/],
    ['absolute', [[{ name: '/etc/x', body: 'x' }]], /absolute path/],
    ['control', [[{ name: 'a\u0001b', body: 'x' }]], /control character/],
    ['root replaced', [[{ name: './', type: 'symlink', linkname: '/' }]], /replaces the root/],
    ['bad whiteout', [[{ name: 'a/.wh..' }]], /invalid whiteout name/],
    [
      'through symlink',
      [
        [
          { name: 'l', type: 'symlink', linkname: '/etc' },
          { name: 'l/x', body: 'x' },
        ],
      ],
      /through a symlink/,
    ],
    [
      'under a file',
      [
        [
          { name: 'f', body: 'f' },
          { name: 'f/x', body: 'x' },
        ],
      ],
      /parent is not a directory/,
    ],
    [
      'lower symlink under a higher entry',
      [[{ name: 'l', type: 'symlink', linkname: '/etc' }], [{ name: 'l/x', body: 'x' }]],
      /layer 1: "l" \(path goes through a symlink\)/,
    ],
    [
      'duplicate file',
      [
        [
          { name: 'f', body: '1' },
          { name: 'f', body: '2' },
        ],
      ],
      /the same path twice in one layer/,
    ],
    ['empty symlink', [[{ name: 's', type: 'symlink', linkname: '' }]], /empty symlink target|symlink/],
    ['link escapes', [[{ name: 'h', type: 'link', linkname: '../etc/passwd' }]], /hardlink target "\.\.\/etc\/passwd"/],
    ['link to itself', [[{ name: 'h', type: 'link', linkname: 'h' }]], /the root or the entry itself/],
    [
      'link to a dir',
      [
        [
          { name: 'd/', type: 'directory' },
          { name: 'h', type: 'link', linkname: 'd' },
        ],
      ],
      /not an earlier regular file/,
    ],
    [
      'link across layers',
      [[{ name: 'f', body: 'f' }], [{ name: 'h', type: 'link', linkname: 'f' }]],
      /layer 2: "h" \(hardlink target "f": not an earlier regular file of the same layer\)/,
    ],
    [
      'link to a file a higher layer replaced',
      [
        [
          { name: 'f', body: 'old' },
          { name: 'h', type: 'link', linkname: 'f' },
        ],
        [{ name: 'f', body: 'new' }],
      ],
      // merged() gives no reread: a second read of the layer is the only way to its data.
      /layer 1: "h" \(hardlink target "f" was replaced or removed by a higher layer\)/,
    ],
  ];
  for (const [what, specs, re] of cases) {
    const layers = await Promise.all(specs.map(tarBuffer));
    await assert.rejects(merged(t, layers), (e: Error) => {
      assert.match(e.message, re, what);
      return true;
    });
  }
});

test('a full host disk while writing passes through as ENOSPC, not as an unsafe entry of the image', async (t) => {
  const img = join(tmp(t), 'fs.img');
  const w = await Ext4Writer.create(img, { sizeBytes: 32 * 2 ** 20, inodes: 256, label: 'm', now: 1700000000 });
  t.after(() => w.abort());
  w.writeFile = () => {
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  };
  const m = new LayerMerger(w, { now: 1700000000 });
  const layer = await tarBuffer([{ name: 'a.txt', body: 'a' }]);
  await assert.rejects(m.applyLayer(readTar(Readable.from([layer]), 'layer 1'), 'layer 1'), (e: Error) => {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    assert.doesNotMatch(e.message, /unsafe entry/);
    return true;
  });
});
