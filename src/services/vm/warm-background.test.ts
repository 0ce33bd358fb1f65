import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ImageRow } from '../../store/images.js';
import type { Logger } from '../context.js';
import { newVmRow } from './params.js';
import type { Template } from './templates.js';
import { backgroundDecision, BackgroundWarm, hasShape, type BackgroundCase } from './warm-background.js';

const base: BackgroundCase = {
  background: true,
  warmStart: true,
  started: true,
  choice: { missing: true },
  defaultImage: true,
  defaultShape: true,
  failedBefore: false,
  running: false,
};
const tpl = { key: 'k', state: 's', root: 'r', work: 'w' };

test('backgroundDecision: only a cold boot of the default spec for want of a template starts a build', () => {
  const cases: [string, Partial<BackgroundCase>, string | undefined][] = [
    ['default image and sizes, no template: build', {}, undefined],
    ['warm_start_background = false', { background: false }, 'warm_start_background = false'],
    ['warm_start = false', { warmStart: false, choice: {} }, 'warm_start = false'],
    ['--no-start', { started: false }, 'the VM was not started'],
    ['restored from a template', { choice: { tpl } }, 'the VM was restored, not booted cold'],
    [
      'restored from a snapshot (vm fork)',
      { choice: { tpl: { ...tpl, label: 'snapshot s1' } } },
      'the VM was restored',
    ],
    ['--cold, firecracker, bridge mode', { choice: {} }, 'another reason than a missing template'],
    ['a restore that failed and booted cold', { choice: { tpl, missing: undefined } }, 'restored'],
    ['another image', { defaultImage: false }, 'not the default image'],
    ['other sizes', { defaultShape: false }, 'not the default VM sizes'],
    ['a failed build before', { failedBefore: true }, 'failed before'],
    ['a build running', { running: true }, 'a background build is running'],
  ];
  for (const [what, over, why] of cases) {
    const d = backgroundDecision({ ...base, ...over });
    if (why === undefined) assert.deepEqual(d, { build: true }, what);
    else {
      assert.equal(d.build, false, what);
      assert.match(d.build ? '' : d.why, new RegExp(why.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')), what);
    }
  }
});

type Shape = { vcpu: number; memoryMib: number; accel: 'kvm' | 'tcg'; diskBytes: number; overlayBytes: number };
const shape: Shape = { vcpu: 2, memoryMib: 1024, accel: 'tcg', diskBytes: 8 << 30, overlayBytes: 8 << 30 };
const row = (over: Partial<Shape> = {}) =>
  newVmRow({
    id: 'a'.repeat(32),
    name: 'v',
    imageId: 'img',
    nat: false,
    vmm: 'qemu',
    networkMode: 'user',
    ...shape,
    ...over,
  });

test('hasShape: every size must be the default spec', () => {
  assert.equal(hasShape(row(), shape), true);
  const others: Partial<Shape>[] = [
    { vcpu: 1 },
    { memoryMib: 2048 },
    { accel: 'kvm' },
    { diskBytes: 1 },
    { overlayBytes: 1 },
  ];
  for (const over of others) assert.equal(hasShape(row(over), shape), false, JSON.stringify(over));
});

test('BackgroundWarm: one build at a time, off the caller; a failed build is logged and not retried', async () => {
  const calls: string[] = [];
  const warns: string[] = [];
  let finish: (ok: boolean) => void = () => undefined;
  const log: Logger = {
    debug: () => undefined,
    info: () => undefined,
    warn: (m) => warns.push(m),
    error: () => undefined,
  };
  const bg = new BackgroundWarm({
    config: { warmStart: true, warmStartBackground: true, defaultImageName: 'deb' },
    log,
    warm: {
      defaultShape: () => shape,
      warm: (name) => {
        calls.push(name);
        return new Promise((resolve, reject) => {
          finish = (ok) =>
            ok ? resolve({ template: { key: 'k' } as Template, built: true }) : reject(new Error('boom'));
        });
      },
    },
  });
  const image = { id: 'img', name: 'deb' } as ImageRow;
  bg.afterColdStart(row(), image);
  bg.afterColdStart(row(), image);
  assert.deepEqual(calls, ['deb'], 'the second create joins nothing: one build at a time');
  finish(false);
  await new Promise((r) => setImmediate(r));
  assert.match(warns.join('\n'), /background template build failed/);
  bg.afterColdStart(row(), image);
  assert.deepEqual(calls, ['deb'], 'not retried after a failure');
  bg.afterColdStart(row(), { id: 'img2', name: 'other' } as ImageRow);
  assert.deepEqual(calls, ['deb'], 'another image is not the default');
});
