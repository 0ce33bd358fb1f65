/*
 * Images made by Ext4Writer, checked by the tools that own the format:
 * `e2fsck -fn` must find nothing, and `debugfs` must read back every entry.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { NodeRunner } from '../../system/node-runner.js';
import { halfMd4 } from './dxhash.js';
import { Ext4Writer, type Attrs } from './writer.js';

const runner = new NodeRunner();
const T = { sec: 1700000000, nsec: 123456789 };
const attrs = (mode: number, uid = 0, gid = 0): Attrs => ({ mode, uid, gid, mtime: T });

async function haveTools(): Promise<boolean> {
  try {
    await runner.run(['e2fsck', '-V']);
    await runner.run(['debugfs', '-V']);
    return true;
  } catch {
    return false;
  }
}

async function build(
  t: TestContext,
  size: number,
  fill: (w: Ext4Writer) => Promise<void>,
  opts: { journalBlocks?: number; inodes?: number } = {},
): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ext4w-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const img = join(dir, 'fs.img');
  const w = await Ext4Writer.create(img, {
    sizeBytes: size,
    inodes: opts.inodes ?? 2048,
    label: 'test',
    ...(opts.journalBlocks !== undefined ? { journalBlocks: opts.journalBlocks } : {}),
  });
  await fill(w);
  await w.finish();
  return img;
}

async function fsck(img: string): Promise<void> {
  const r = await runner.run(['e2fsck', '-fn', img]);
  assert.equal(r.code, 0, `e2fsck -fn found problems:\n${r.stdout}\n${r.stderr}`);
}

async function debugfs(img: string, cmd: string): Promise<string> {
  const r = await runner.run(['debugfs', '-R', cmd, img]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The fields of `debugfs stat` a test compares. */
function statFields(out: string): Record<string, string> {
  const f: Record<string, string> = {};
  const grab = (key: string, re: RegExp): void => {
    const m = re.exec(out);
    if (m?.[1] !== undefined) f[key] = m[1];
  };
  grab('type', /Type: (\S+)/);
  grab('mode', /Mode:\s+(\d+)/);
  grab('uid', /User:\s+(\d+)/);
  grab('gid', /Group:\s+(\d+)/);
  grab('size', /Size: (\d+)/);
  grab('links', /Links: (\d+)/);
  grab('mtime', /mtime: (0x[0-9a-f]+:[0-9a-f]+)/);
  grab('fast', /Fast link dest: "([^"]*)"/);
  grab('dev', /Device major\/minor number: (\S+)/);
  return f;
}

test('an image of every entry type is e2fsck-clean and reads back through debugfs', async (t) => {
  if (!(await haveTools())) return t.skip('e2fsprogs not installed');
  const slowTarget = `/${'a'.repeat(100)}/${'b'.repeat(100)}`;
  const img = await build(t, 64 * 2 ** 20, async (w) => {
    w.setRootAttrs(attrs(0o755));
    w.mkdir('etc', attrs(0o755));
    w.mkdir('tmp', attrs(0o1777));
    await w.writeFile('etc/suid', attrs(0o4755, 1000, 1001), 5000, Buffer.alloc(5000, 1));
    await w.writeFile('etc/sgid', attrs(0o2711, 5, 6), 1, Buffer.from('y'));
    await w.writeFile('etc/empty', attrs(0o600), 0, Buffer.alloc(0));
    await w.symlink('etc/fast', 'suid', attrs(0o777));
    await w.symlink('etc/slow', slowTarget, attrs(0o777));
    w.link('etc/hard', 'etc/suid');
    w.mknod('etc/null', 'chr', attrs(0o666), 1, 3);
    w.mknod('etc/big-minor', 'chr', attrs(0o600), 300, 70000);
    w.mknod('etc/sda1', 'blk', attrs(0o660, 0, 6), 8, 1);
    w.mknod('etc/fifo', 'fifo', attrs(0o600));
    w.mknod('etc/sock', 'sock', attrs(0o755));
  });
  await fsck(img);
  const mtime = '0x6553f100:1d6f3454'; // 123456789 ns << 2
  const cases: Array<[string, Record<string, string>]> = [
    ['/', { type: 'directory', mode: '0755', links: '5', size: '4096' }],
    ['/tmp', { type: 'directory', mode: '01777', links: '2', mtime }],
    ['/lost+found', { type: 'directory', mode: '0700', size: '16384' }],
    ['/etc/suid', { type: 'regular', mode: '04755', uid: '1000', gid: '1001', size: '5000', links: '2', mtime }],
    ['/etc/sgid', { type: 'regular', mode: '02711', uid: '5', gid: '6', size: '1', links: '1' }],
    ['/etc/empty', { type: 'regular', mode: '0600', size: '0' }],
    ['/etc/fast', { type: 'symlink', mode: '0777', size: '4', fast: 'suid' }],
    ['/etc/slow', { type: 'symlink', size: String(slowTarget.length) }],
    ['/etc/null', { type: 'character', mode: '0666', dev: '01:03' }],
    ['/etc/big-minor', { type: 'character', dev: '300:70000' }],
    ['/etc/sda1', { type: 'block', gid: '6', dev: '08:01' }],
    ['/etc/fifo', { type: 'FIFO', mode: '0600' }],
    ['/etc/sock', { type: 'socket', mode: '0755' }],
  ];
  for (const [path, want] of cases) {
    const got = statFields(await debugfs(img, `stat ${path}`));
    for (const [k, v] of Object.entries(want)) assert.equal(got[k], v, `${path} ${k}`);
  }
  assert.equal(await debugfs(img, 'cat /etc/sgid'), 'y');
  assert.equal((await debugfs(img, 'cat /etc/slow')).trimEnd(), slowTarget);
  const slow = await debugfs(img, 'stat /etc/slow');
  assert.match(slow, /EXTENTS:\n\(0\):\d+/, 'a slow symlink keeps its target in one data block');
  const ls = await debugfs(img, 'ls -l /etc');
  const suidIno = /^\s*(\d+)\s+104755.* suid$/m.exec(ls)?.[1];
  assert.ok(suidIno !== undefined, ls);
  assert.match(ls, new RegExp(`^\\s*${suidIno}\\s+104755.* hard$`, 'm'), 'the hard link shares the inode');
});

test('file data: holes for zero blocks, extent trees of depth 0, 1 and 2, content read back', async (t) => {
  if (!(await haveTools())) return t.skip('e2fsprogs not installed');
  // Every other block non-zero: one extent per data block.
  const striped = (blocks: number): Buffer => {
    const b = Buffer.alloc(blocks * 4096);
    for (let i = 0; i < blocks; i += 2) b.fill((i % 250) + 1, i * 4096, (i + 1) * 4096);
    return b;
  };
  const files: Array<[name: string, data: Buffer, depth: number]> = [
    ['depth0', striped(7), 0],
    ['depth1', striped(41), 1],
    ['depth2', striped(2 * 1400), 2],
    ['dense', Buffer.alloc(3 * 2 ** 20 + 17, 0x5a), 0],
  ];
  const img = await build(t, 256 * 2 ** 20, async (w) => {
    for (const [name, data] of files) {
      // Streamed in uneven pieces, as a tar entry arrives.
      const pieces = async function* (): AsyncGenerator<Buffer> {
        for (let off = 0; off < data.length; off += 100003) yield data.subarray(off, off + 100003);
      };
      await w.writeFile(name, attrs(0o644), data.length, pieces());
    }
  });
  await fsck(img);
  for (const [name, data, depth] of files) {
    const ex = await debugfs(img, `ex /${name}`);
    const levels = [...ex.matchAll(/^\s*(\d+)\/\s*(\d+)/gm)].map((m) => Number(m[2]));
    assert.equal(levels[0] ?? 0, depth, `${name}: tree depth\n${ex.slice(0, 400)}`);
    const blocks = Number(/Blockcount: (\d+)/.exec(await debugfs(img, `stat /${name}`))?.[1]);
    const dataBlocks = Math.ceil(data.length / 4096);
    const nonZero = name === 'dense' ? dataBlocks : Math.ceil(dataBlocks / 2);
    assert.ok(blocks >= nonZero * 8 && blocks <= (nonZero + 8) * 8, `${name}: ${blocks} sectors`);
    const out = join(dirname(img), `${name}.out`);
    await debugfs(img, `dump /${name} ${out}`);
    assert.ok(readFileSync(out).equals(data), `${name}: content read back`);
  }
});

test('images of several groups keep superblock backups and pass e2fsck', async (t) => {
  if (!(await haveTools())) return t.skip('e2fsprogs not installed');
  const img = await build(t, 700 * 2 ** 20, async (w) => {
    for (let i = 0; i < 50; i++) {
      w.mkdir(`d${i}`, attrs(0o755));
      await w.writeFile(`d${i}/f`, attrs(0o644), 300000, Buffer.alloc(300000, i + 1));
    }
  });
  await fsck(img);
  const dump = (await runner.run(['dumpe2fs', img])).stdout;
  assert.match(
    dump,
    /Filesystem features:\s+has_journal ext_attr resize_inode dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum\n/,
  );
  for (const g of [1, 3, 5]) assert.match(dump, new RegExp(`Group ${g}: .*\\n\\s+Backup superblock at`));
  // The resize inode maps the reserved descriptor blocks as mke2fs would for this size.
  assert.match(dump, /Reserved GDT blocks:\s+87\n/);
  const resize = statFields(await debugfs(img, 'stat <7>'));
  assert.deepEqual([resize.type, resize.mode, resize.size], ['regular', '0600', '4299210752']);
  assert.match(await debugfs(img, 'stat <7>'), /Blockcount: 2792\n/);
  // Reserved descriptor block k of the table sits at double-indirect slot k (block 2 is index 1:
  // logical block 12 + 1024 + 1024), where the kernel's online resize looks for it.
  assert.match(await debugfs(img, 'stat <7>'), /\(IND\):2, \(2060\):32770,/);
  // A backup superblock alone is enough for e2fsck.
  const r = await runner.run(['e2fsck', '-fn', '-b', '32768', img]);
  assert.equal(r.code, 0, r.stdout);
});

test('the resize inode maps the same blocks as mkfs.ext4 gives an image of the same size', async (t) => {
  if (!(await haveTools())) return t.skip('e2fsprogs not installed');
  // 2 GiB, as a default rootfs: 16 groups, backups in 1, 3, 5, 7, 9; online growth to 8 GiB adds 25, 27, 49.
  const size = 2 * 2 ** 30;
  const img = await build(t, size, async () => {}, { inodes: size / 16384 });
  const ref = join(dirname(img), 'mkfs.img');
  await runner.check(['truncate', '-s', String(size), ref]);
  await runner.check(['mkfs.ext4', '-q', '-F', '-b', '4096', '-N', String(size / 16384), ref]);
  // Everything but where the double-indirect block itself sits (the tools place the tables differently).
  const blocks = async (f: string): Promise<string> =>
    (/BLOCKS:\n(.*)\n/.exec(await debugfs(f, 'stat <7>'))?.[1] ?? '').replace(/^\(DIND\):\d+, /, '');
  const mine = await blocks(img);
  assert.match(mine, /^\(IND\):2, \(2060\):32770, /);
  assert.equal(mine, await blocks(ref));
});

test('the journal is a clean jbd2 log of the requested size', async (t) => {
  if (!(await haveTools())) return t.skip('e2fsprogs not installed');
  const img = await build(t, 64 * 2 ** 20, async () => {}, { journalBlocks: 2048 });
  await fsck(img);
  const dump = (await runner.run(['dumpe2fs', '-h', img])).stdout;
  assert.match(dump, /Journal inode:\s+8/);
  assert.match(dump, /Total journal blocks:\s+2048/);
  assert.match(dump, /Journal start:\s+0/);
  const none = await build(t, 64 * 2 ** 20, async () => {}, { journalBlocks: 0 });
  await fsck(none);
  assert.doesNotMatch((await runner.run(['dumpe2fs', '-h', none])).stdout, /has_journal/);
});

test('xattrs: in the inode while they fit, then in a checksummed block; ACLs in ext4 form', async (t) => {
  if (!(await haveTools())) return t.skip('e2fsprogs not installed');
  const caps = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  // VFS posix_acl (version 2): user::rwx group::r-x group:4:r-x mask::r-x other::r-x
  const acl = Buffer.from(
    '02000000010007000000000004000500000000000800050004000000100005000000000020000500' + '00000000',
    'hex',
  );
  const x = (...xattrs: Array<[string, Buffer]>): Attrs => ({ ...attrs(0o755), xattrs });
  const img = await build(t, 64 * 2 ** 20, async (w) => {
    w.setRootAttrs(x(['security.selinux', Buffer.from('root_t\0')]));
    await w.writeFile('cap', x(['security.capability', caps]), 1, Buffer.from('z'));
    await w.writeFile('user', x(['user.foo', Buffer.from('bar')], ['user.empty', Buffer.alloc(0)]), 0, Buffer.alloc(0));
    await w.writeFile(
      'big',
      x(['user.big', Buffer.alloc(1000, 0x41)], ['trusted.t', Buffer.from('x')], ['security.capability', caps]),
      0,
      Buffer.alloc(0),
    );
    w.mkdir('acl', x(['system.posix_acl_access', acl], ['system.posix_acl_default', acl]));
    await w.symlink('lnk', 'cap', x(['user.l', Buffer.from('1')]));
    w.mknod('dev', 'chr', x(['user.d', Buffer.from('2')]), 1, 5);
  });
  await fsck(img);
  const ext4Acl = '01 00 00 00 01 00 07 00 04 00 05 00 08 00 05 00 04 00 00 00 10 00 05 00 20 00 05 00 ';
  const cases: Array<[string, string[], boolean]> = [
    ['/', ['security.selinux (7) = 72 6f 6f 74 5f 74 00 '], false],
    ['/cap', ['security.capability (20) = 01 00 00 02 00 20 00 00 00 00 00 00 00 00 00 00 00 00 00 00 '], false],
    ['/user', ['user.foo (3) = "bar"', 'user.empty (0)'], false],
    ['/big', ['user.big (1000)', 'trusted.t (1) = "x"', 'security.capability (20)'], true],
    ['/acl', [`system.posix_acl_access (28) = ${ext4Acl}`, `system.posix_acl_default (28) = ${ext4Acl}`], false],
    ['/lnk', ['user.l (1) = "1"'], false],
    ['/dev', ['user.d (1) = "2"'], false],
  ];
  for (const [path, want, inBlock] of cases) {
    const list = await debugfs(img, `ea_list ${path}`);
    for (const line of want) assert.ok(list.includes(line), `${path}: ${line}\n${list}`);
    const acl = /File ACL: (\d+)/.exec(await debugfs(img, `stat ${path}`))?.[1];
    assert.equal(acl !== '0', inBlock, `${path}: xattr block ${acl}`);
  }
});

test('xattrs that ext4 cannot store are refused by name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ext4w-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const w = await Ext4Writer.create(join(dir, 'fs.img'), { sizeBytes: 16 * 2 ** 20, inodes: 64, label: 'x' });
  t.after(() => w.abort());
  const bad: Array<[string, Buffer, RegExp]> = [
    ['os2.x', Buffer.from('1'), /"os2\.x" is not in a namespace/],
    ['system.posix_acl_access', Buffer.from('garbage!'), /not a POSIX ACL/],
    ['user.huge', Buffer.alloc(5000), /do not fit in one block/],
  ];
  for (const [name, value, re] of bad) {
    assert.throws(() => w.mkdir(`d-${name}`, { ...attrs(0o755), xattrs: [[name, value]] }), re);
  }
});

test('the half-MD4 directory hash agrees with debugfs dx_hash (seeded and not, long and non-ASCII names)', async (t) => {
  if (!(await haveTools())) return t.skip('e2fsprogs not installed');
  const img = await build(t, 16 * 2 ** 20, async () => {}, { journalBlocks: 0 });
  const seedHex = '0123456789abcdef0123456789abcdef';
  const uuid = `${seedHex.slice(0, 8)}-${seedHex.slice(8, 12)}-${seedHex.slice(12, 16)}-${seedHex.slice(16, 20)}-${seedHex.slice(20)}`;
  for (const name of ['hello', 'a', 'x'.repeat(33), 'y'.repeat(255), 'éé-ünïcode', 'file-0042']) {
    for (const [seed, arg] of [
      [Buffer.from(seedHex, 'hex'), `-s ${uuid} `],
      [Buffer.alloc(16), ''],
    ] as const) {
      const out = await debugfs(img, `dx_hash -h half_md4 ${arg}${name}`);
      const m = /is 0x([0-9a-f]+) \(minor 0x([0-9a-f]+)\)/.exec(out);
      assert.ok(m, out);
      const h = halfMd4(Buffer.from(name), seed);
      assert.deepEqual([h.hash, h.minor], [parseInt(m[1] as string, 16), parseInt(m[2] as string, 16)], name);
    }
  }
});

test('directories past one block are hash-indexed (one and two levels) and pass e2fsck', async (t) => {
  if (!(await haveTools())) return t.skip('e2fsprogs not installed');
  const dirs: Array<[dir: string, count: number, nameLen: number, levels: number | undefined]> = [
    ['one-block', 100, 10, undefined],
    ['level0', 3000, 20, 0],
    ['level1', 11000, 200, 1],
  ];
  const nameOf = (i: number, len: number): string => String(i).padStart(len, 'n');
  const img = await build(
    t,
    512 * 2 ** 20,
    async (w) => {
      for (const [dir, count, len] of dirs) {
        w.mkdir(dir, attrs(0o755));
        for (let i = 0; i < count; i++) w.mknod(`${dir}/${nameOf(i, len)}`, 'fifo', attrs(0o644));
      }
    },
    { inodes: 16000 },
  );
  await fsck(img);
  for (const [dir, count, len, levels] of dirs) {
    const tree = (await runner.run(['debugfs', '-R', `htree /${dir}`, img])).stdout;
    if (levels === undefined) assert.doesNotMatch(tree, /Root node dump/, dir);
    else assert.match(tree, new RegExp(`Indirect levels: ${levels}\\n`), dir);
    const last = statFields(await debugfs(img, `stat /${dir}/${nameOf(count - 1, len)}`));
    assert.equal(last.type, 'FIFO', dir);
  }
});

test('an image with reserved descriptor blocks grows with (offline) resize2fs and stays clean', async (t) => {
  if (!(await haveTools())) return t.skip('e2fsprogs not installed');
  const img = await build(t, 64 * 2 ** 20, async (w) => {
    w.mkdir('etc', attrs(0o755));
    await w.writeFile('etc/f', attrs(0o644), 100000, Buffer.alloc(100000, 7));
  });
  const before = (await runner.run(['dumpe2fs', '-h', img])).stdout;
  const reserved = Number(/Reserved GDT blocks:\s+(\d+)/.exec(before)?.[1]);
  assert.ok(reserved > 0, before);
  const r = await runner.run(['resize2fs', img, '12G']);
  assert.equal(r.code, 0, r.stderr);
  await fsck(img);
  const after = (await runner.run(['dumpe2fs', '-h', img])).stdout;
  assert.match(after, /Block count:\s+3145728\n/);
  assert.equal(statFields(await debugfs(img, 'stat /etc/f')).size, '100000');
});

test('bad entries are refused by name and leave the image consistent', async (t) => {
  if (!(await haveTools())) return t.skip('e2fsprogs not installed');
  const img = await build(
    t,
    16 * 2 ** 20,
    async (w) => {
      w.mkdir('d', attrs(0o755));
      await w.writeFile('d/f', attrs(0o644), 1, Buffer.from('x'));
      const refused: Array<[string, () => unknown, RegExp]> = [
        ['dot-dot', () => w.mkdir('d/../x', attrs(0o755)), /"d\/\.\.\/x" has a '\.\.' component/],
        ['NUL', () => w.mkdir('d/a\0b', attrs(0o755)), /has a NUL byte/],
        ['long name', () => w.mkdir(`d/${'n'.repeat(256)}`, attrs(0o755)), /is over 255 bytes/],
        ['parent is a file', () => w.mkdir('d/f/x', attrs(0o755)), /parent of "d\/f\/x" is not a directory/],
        ['missing parent', () => w.mkdir('nope/x', attrs(0o755)), /parent of "nope\/x" is not a directory/],
        ['duplicate', () => w.mkdir('d/f', attrs(0o755)), /"d\/f" already exists/],
        ['root', () => w.mkdir('.', attrs(0o755)), /names the root/],
        ['link to a directory', () => w.link('d/l', 'd'), /hard link target "d" is a directory/],
        ['link to nothing', () => w.link('d/l', 'd/none'), /hard link target "d\/none" does not exist/],
        ['empty symlink', () => w.symlink('d/s', '', attrs(0o777)), /symlink target of 0 bytes/],
        ['huge symlink', () => w.symlink('d/s', 'x'.repeat(4096), attrs(0o777)), /symlink target of 4096 bytes/],
      ];
      for (const [what, fn, re] of refused) {
        await assert.rejects(async () => fn(), re, what);
      }
    },
    { inodes: 64 },
  );
  await fsck(img);
  const ls = await debugfs(img, 'ls /d');
  assert.doesNotMatch(ls, /\bl\b|\bs\b|nope/, ls);
});

test('a file whose stream is shorter or longer than its size makes the image unfinishable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ext4w-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [label, size, pieces, re] of [
    ['short', 10, [Buffer.from('abc')], /has 3 bytes, not 10/],
    ['long', 2, [Buffer.from('abc')], /has more than 2 bytes/],
  ] as const) {
    const w = await Ext4Writer.create(join(dir, `${label}.img`), { sizeBytes: 16 * 2 ** 20, inodes: 64, label });
    const stream = async function* (): AsyncGenerator<Buffer> {
      yield* pieces;
    };
    await assert.rejects(w.writeFile('f', attrs(0o644), size, stream()), re);
    await assert.rejects(w.finish(), /the image is incomplete \(writing "f" failed\); abort\(\) it/);
    await w.abort();
  }
});

test('running out of inodes or blocks is an error, not a corrupt image', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ext4w-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const w = await Ext4Writer.create(join(dir, 'i.img'), {
    sizeBytes: 16 * 2 ** 20,
    inodes: 16,
    label: 'i',
    journalBlocks: 0,
  });
  assert.throws(() => {
    for (let i = 0; i < 100; i++) w.mkdir(`d${i}`, attrs(0o755));
  }, /the image is out of inodes \(16\)/);
  await w.abort();
  const b = await Ext4Writer.create(join(dir, 'b.img'), { sizeBytes: 16 * 2 ** 20, inodes: 64, label: 'b' });
  await assert.rejects(
    b.writeFile('big', attrs(0o644), 32 * 2 ** 20, Buffer.alloc(32 * 2 ** 20, 1)),
    /the image is full/,
  );
  await b.abort();
});
