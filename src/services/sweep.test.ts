import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Paths } from '../system/paths.js';
import type { Logger } from './context.js';
import { sweepOrphans } from './sweep.js';

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

function home(): Paths {
  const root = mkdtempSync(join(tmpdir(), 'sweep-'));
  roots.push(root);
  const paths = new Paths({ HOME: root }, 0);
  for (const d of [paths.tmpDir, paths.imagesDir, paths.kernelsDir, paths.vmsDir]) mkdirSync(d, { recursive: true });
  return paths;
}

function put(path: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, 'x');
}

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const rec = (msg: string, f?: Record<string, unknown>): void => void lines.push(`${msg} ${JSON.stringify(f ?? {})}`);
  return { log: { debug: rec, info: rec, warn: rec, error: rec }, lines };
}

test('everything in tmp/ and every dir without a row goes; dirs with rows stay, whatever their names', async () => {
  const p = home();
  const keep = [
    join(p.imageDir('0123456789abcdef'), 'rootfs.ext4'),
    join(p.kernelDir('my.staging'), 'manifest.json'),
    join(p.kernelDir('.odd.staging-scratch'), 'manifest.json'),
    join(p.vmDir('a'.repeat(32)), 'root.qcow2'),
  ];
  const gone = [
    join(p.tmpDir, 'image-1111', 'tree', 'f'),
    join(p.tmpDir, 'kernel-x-2222', 'scratch', 'f'),
    join(p.imagesDir, 'fedcba9876543210', 'rootfs.ext4'),
    join(p.imagesDir, 'fedcba9876543210.staging', 'tree', 'f'),
    join(p.kernelsDir, '.debian-bookworm-cloud.staging-scratch', 'tree', 'f'),
    join(p.kernelsDir, '.k.staging', 'bzImage'),
    join(p.kernelsDir, 'no-row', 'manifest.json'),
    join(p.vmDir('b'.repeat(32)), 'root.qcow2'),
  ];
  for (const f of [...keep, ...gone]) put(f);
  const { log, lines } = recordingLog();
  const removed = await sweepOrphans(
    p,
    { imageIds: ['0123456789abcdef'], kernelNames: ['my.staging', '.odd.staging-scratch'], vmIds: ['a'.repeat(32)] },
    log,
  );
  for (const f of keep) assert.ok(existsSync(f), `kept ${f}`);
  for (const f of gone) assert.ok(!existsSync(f), `removed ${f}`);
  assert.deepEqual(readdirSync(p.tmpDir), []);
  assert.equal(removed.length, 8);
  for (const r of removed)
    assert.ok(
      lines.some((l) => l.includes(JSON.stringify(r))),
      `logged ${r}`,
    );
});

test('a symlink among the leftovers is removed, never followed', async () => {
  const p = home();
  const outside = join(p.home, 'precious');
  put(join(outside, 'file'));
  symlinkSync(outside, join(p.imagesDir, 'link'));
  symlinkSync(outside, join(p.tmpDir, 'link'));
  await sweepOrphans(p, { imageIds: [], kernelNames: [], vmIds: [] }, recordingLog().log);
  assert.ok(existsSync(join(outside, 'file')));
  assert.deepEqual(readdirSync(p.imagesDir), []);
  assert.deepEqual(readdirSync(p.tmpDir), []);
});

test('missing directories are not an error', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sweep-'));
  roots.push(root);
  assert.deepEqual(
    await sweepOrphans(new Paths({ HOME: root }, 0), { imageIds: [], kernelNames: [], vmIds: [] }, recordingLog().log),
    [],
  );
});
