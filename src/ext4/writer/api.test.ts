/* The writer's lookup and attribute updates, which layer merging builds on. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeRunner } from '../../system/node-runner.js';
import { Ext4Writer, type Attrs } from './writer.js';

const T = { sec: 1700000000, nsec: 0 };
const attrs = (mode: number, uid = 0, gid = 0): Attrs => ({ mode, uid, gid, mtime: T });

async function writer(t: import('node:test').TestContext): Promise<{ w: Ext4Writer; img: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ext4w-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const img = join(dir, 'fs.img');
  return { w: await Ext4Writer.create(img, { sizeBytes: 16 * 2 ** 20, inodes: 64, label: 'api' }), img };
}

test('lookup: types by path, never through a symlink, undefined for what is not there', async (t) => {
  const { w } = await writer(t);
  t.after(() => w.abort());
  w.mkdir('d', attrs(0o755));
  await w.writeFile('d/f', attrs(0o644), 0, Buffer.alloc(0));
  await w.symlink('l', 'd', attrs(0o777));
  w.mknod('d/p', 'fifo', attrs(0o600));
  const cases: Array<[string, string | undefined]> = [
    ['', 'dir'],
    ['.', 'dir'],
    ['d', 'dir'],
    ['d/', 'dir'],
    ['./d/f', 'file'],
    ['l', 'symlink'],
    ['d/p', 'fifo'],
    ['lost+found', 'dir'],
    ['l/f', undefined],
    ['d/f/x', undefined],
    ['nope', undefined],
    ['nope/deeper', undefined],
  ];
  for (const [path, type] of cases) assert.equal(w.lookup(path)?.type, type, JSON.stringify(path));
});

test('setDirAttrs re-declares a directory; anything else is refused and left as it was', async (t) => {
  const runner = new NodeRunner();
  const { w, img } = await writer(t);
  w.mkdir('usr', attrs(0o700));
  await w.writeFile('usr/f', attrs(0o644), 0, Buffer.alloc(0));
  w.setDirAttrs('usr', { ...attrs(0o2775, 10, 20), xattrs: [['user.k', Buffer.from('v')]] });
  w.setDirAttrs('', attrs(0o711));
  assert.throws(() => w.setDirAttrs('usr/f', attrs(0o755)), /"usr\/f" is not a directory/);
  assert.throws(() => w.setDirAttrs('missing', attrs(0o755)), /"missing" is not a directory/);
  assert.throws(
    () => w.setDirAttrs('usr', { ...attrs(0o700), xattrs: [['bogus.k', Buffer.from('v')]] }),
    /"bogus\.k" is not in a namespace/,
  );
  await w.finish();
  const fsck = await runner.run(['e2fsck', '-fn', img]);
  assert.equal(fsck.code, 0, fsck.stdout);
  const usr = (await runner.run(['debugfs', '-R', 'stat /usr', img])).stdout;
  assert.match(usr, /Mode:\s+02775/);
  assert.match(usr, /User:\s+10\s+Group:\s+20/);
  assert.match((await runner.run(['debugfs', '-R', 'ea_list /usr', img])).stdout, /user\.k \(1\) = "v"/);
  assert.match((await runner.run(['debugfs', '-R', 'stat /', img])).stdout, /Type: directory\s+Mode:\s+0711/);
});

test('ids past 16 bits and times outside 1970-2038 keep their high parts', async (t) => {
  const runner = new NodeRunner();
  const { w, img } = await writer(t);
  // Low 32 bits signed, plus epoch bits that add multiples of 2^32 seconds.
  const cases: Array<[name: string, sec: number, hex: string, year: string]> = [
    ['pre-1970', -1, '0xffffffff:00000000', '1969'],
    ['y2038', 2 ** 31, '0x80000000:00000001', '2038'],
    ['y2200', 7258118400, '0xb09e1900:00000002', '2200'],
  ];
  for (const [name, sec] of cases) {
    await w.writeFile(name, { mode: 0o644, uid: 100000, gid: 70000, mtime: { sec, nsec: 0 } }, 0, Buffer.alloc(0));
  }
  await w.finish();
  assert.equal((await runner.run(['e2fsck', '-fn', img])).code, 0);
  for (const [name, , hex, year] of cases) {
    const st = (await runner.run(['debugfs', '-R', `stat /${name}`, img], { env: { TZ: 'UTC' } })).stdout;
    assert.match(st, /User:\s+100000\s+Group:\s+70000/, name);
    const mtime = / mtime: (\S+) -- .*\b(\d{4})\n/.exec(st);
    assert.deepEqual([mtime?.[1], mtime?.[2]], [hex, year], name);
  }
});
