import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Paths } from '../../system/paths.js';
import type { Logger } from '../context.js';
import { TemplateStore, type TemplateMeta } from './templates.js';

const log: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function setup(): {
  store: TemplateStore;
  paths: Paths;
  build: (key: string, over?: Partial<TemplateMeta>) => [string, TemplateMeta];
} {
  const root = mkdtempSync(join(tmpdir(), 'tpl-'));
  const paths = new Paths({ HOME: root, XDG_STATE_HOME: join(root, 'state') }, 1000);
  let n = 0;
  return {
    store: new TemplateStore(paths, log),
    paths,
    build: (key, over = {}) => {
      const dir = join(root, `build-${n++}`);
      mkdirSync(dir, { recursive: true });
      for (const f of ['state.bin', 'root.qcow2', 'work.ext4']) writeFileSync(join(dir, f), f);
      const meta: TemplateMeta = {
        key,
        image_id: 'img1',
        image_name: 'deb',
        vcpu: 1,
        memory_mib: 512,
        disk_bytes: 1 << 30,
        overlay_bytes: 1 << 30,
        created_at: '2026-12-03T00:00:00Z',
        ...over,
      };
      return [dir, meta];
    },
  };
}

const K1 = 'a'.repeat(48);
const K2 = 'b'.repeat(48);
const K3 = 'c'.repeat(48);

test('template store: an installed template serves; a newer one of the same image and spec supersedes it at once', async () => {
  const { store, build } = setup();
  const t1 = await store.install(...build(K1), new Set());
  assert.equal((await store.current(K1))?.key, K1);
  assert.equal(t1.state !== undefined, true);
  // Another spec of the same image is not superseded; the same spec is.
  await store.install(...build(K3, { vcpu: 2 }), new Set());
  await store.install(...build(K2), new Set([K1]));
  assert.equal(await store.current(K1), undefined, 'superseded: no longer serves');
  assert.equal((await store.current(K2))?.key, K2);
  assert.equal((await store.current(K3))?.key, K3, 'another spec keeps serving');
  const old = (await store.list()).find((t) => t.key === K1);
  assert.ok(old, 'a VM stands on the superseded root layer: its dir stays');
  assert.equal(old.state, undefined, 'but its memory file went at once');
  await store.collect(new Set([K1]));
  assert.ok(
    (await store.list()).some((t) => t.key === K1),
    'still referenced',
  );
  await store.collect(new Set());
  assert.deepEqual(
    (await store.list()).map((t) => t.key),
    [K2, K3],
    'the last VM gone: the layer goes',
  );
});

test('template store: removeForImage removes every template of the image (kept only while a VM stands on one)', async () => {
  const { store, build, paths } = setup();
  await store.install(...build(K1), new Set());
  await store.install(...build(K3, { image_id: 'img2' }), new Set());
  await store.removeForImage('img1', new Set());
  assert.deepEqual(readdirSync(paths.templatesDir), [K3]);
});

test('template store: a dir without metadata, with metadata of another key, or a bad name is not a template', async () => {
  const { store, paths } = setup();
  mkdirSync(join(paths.templateDir(K1)), { recursive: true });
  writeFileSync(join(paths.templateDir(K1), 'state.bin'), 'x');
  mkdirSync(join(paths.templateDir(K2)), { recursive: true });
  writeFileSync(join(paths.templateDir(K2), 'state.bin'), 'x');
  writeFileSync(join(paths.templateDir(K2), 'template.json'), JSON.stringify({ key: K3 }));
  mkdirSync(join(paths.templatesDir, 'not-a-key'), { recursive: true });
  assert.deepEqual(await store.list(), []);
  assert.equal(await store.current(K1), undefined);
  assert.equal(await store.current(K2), undefined);
  assert.ok(existsSync(paths.templateDir(K1)));
});
