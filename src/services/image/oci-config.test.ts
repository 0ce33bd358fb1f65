import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AppError } from '../../errors.js';
import {
  applyImageConfig,
  DEFAULT_PATH,
  NO_RUNTIME_CONFIG,
  readRuntimeConfig,
  resolveUser,
  runtimeConfig,
  type ImageRuntimeConfig,
} from './oci-config.js';

const cfg = (o: Partial<ImageRuntimeConfig>): ImageRuntimeConfig => ({ ...NO_RUNTIME_CONFIG, ...o });

test('runtimeConfig keeps the runtime fields of an image config', () => {
  const cases: [string, unknown, ImageRuntimeConfig][] = [
    ['absent', undefined, NO_RUNTIME_CONFIG],
    ['null', null, NO_RUNTIME_CONFIG],
    ['empty', {}, NO_RUNTIME_CONFIG],
    [
      'all',
      { Env: ['A=1', 'B='], WorkingDir: '/w', User: 'app', Entrypoint: ['/e'], Cmd: ['c'], Labels: { x: 'y' } },
      { env: ['A=1', 'B='], working_dir: '/w', user: 'app', entrypoint: ['/e'], cmd: ['c'] },
    ],
    ['nulls', { Env: null, Cmd: null, WorkingDir: null }, NO_RUNTIME_CONFIG],
    ['value with =', { Env: ['A=b=c'] }, cfg({ env: ['A=b=c'] })],
  ];
  for (const [name, input, want] of cases) assert.deepEqual(runtimeConfig(input, 'img'), want, name);
});

test('runtimeConfig refuses wrong types and oversized values, naming the field', () => {
  const cases: [unknown, RegExp][] = [
    ['text', /config is not an object/],
    [{ Env: 'A=1' }, /Env is not a list/],
    [{ Env: ['A=1', 7] }, /Env\[1\] is not a string/],
    [{ Env: ['=x'] }, /Env\[0\] "=x" is not NAME=value/],
    [{ Env: ['NOVALUE'] }, /Env\[0\] "NOVALUE" is not NAME=value/],
    [{ WorkingDir: 5 }, /WorkingDir is not a string/],
    [{ User: 'a\0b' }, /User contains a NUL byte/],
    [{ Cmd: Array.from({ length: 1025 }, () => 'x') }, /Cmd has 1025 entries \(at most 1024\)/],
    [{ Entrypoint: ['x'.repeat(40000)] }, /Entrypoint\[0\] is longer than 32768 bytes/],
  ];
  for (const [input, re] of cases)
    assert.throws(
      () => runtimeConfig(input, 'reg/img:1'),
      (e: unknown) =>
        e instanceof AppError && e.code === 'bad_request' && re.test(e.message) && e.message.startsWith('reg/img:1'),
      String(re),
    );
});

test('applyImageConfig: image Env under the request env, PATH defaulted, cwd, numeric and named users', () => {
  const cases: [
    string,
    ImageRuntimeConfig | undefined,
    Parameters<typeof applyImageConfig>[1],
    ReturnType<typeof applyImageConfig>,
  ][] = [
    ['no config', undefined, {}, { env: { PATH: DEFAULT_PATH }, cwd: '' }],
    [
      'image env and workdir',
      cfg({ env: ['PATH=/opt/bin', 'LANG=C'], working_dir: '/srv' }),
      {},
      { env: { PATH: '/opt/bin', LANG: 'C' }, cwd: '/srv' },
    ],
    [
      '-e and cwd win',
      cfg({ env: ['LANG=C'], working_dir: '/srv' }),
      { env: { LANG: 'de_DE' }, cwd: '/tmp' },
      { env: { PATH: DEFAULT_PATH, LANG: 'de_DE' }, cwd: '/tmp' },
    ],
    ['uid', cfg({ user: '1000' }), {}, { env: { PATH: DEFAULT_PATH }, cwd: '', uid: 1000 }],
    ['uid:gid', cfg({ user: '1000:50' }), {}, { env: { PATH: DEFAULT_PATH }, cwd: '', uid: 1000, gid: 50 }],
    ['name', cfg({ user: 'app:staff' }), {}, { env: { PATH: DEFAULT_PATH }, cwd: '', userName: 'app:staff' }],
  ];
  for (const [name, c, req, want] of cases) assert.deepEqual(applyImageConfig(c, req), want, name);
  assert.throws(() => applyImageConfig(cfg({ user: '99999999999' }), {}), /out of range/);
});

test('readRuntimeConfig: none without a manifest or config key; bad files are errors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ocicfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.equal(await readRuntimeConfig(dir), undefined);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: 'x' }));
  assert.equal(await readRuntimeConfig(dir), undefined);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ config: { env: ['A=1'], user: '0' } }));
  assert.deepEqual(await readRuntimeConfig(dir), cfg({ env: ['A=1'], user: '0' }));
  writeFileSync(join(dir, 'manifest.json'), '{');
  await assert.rejects(readRuntimeConfig(dir), /not valid JSON/);
  writeFileSync(join(dir, 'manifest.json'), ' '.repeat(1024 * 1024 + 1));
  await assert.rejects(readRuntimeConfig(dir), /larger than/);
});

test('resolveUser: names and numbers against the guest passwd and group', () => {
  const passwd =
    'root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1001::/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n';
  const group = 'root:x:0:\nstaff:x:50:app\napp:x:1001:\n';
  const cases: [string, { uid: number; gid: number }][] = [
    ['app', { uid: 1000, gid: 1001 }],
    ['1000', { uid: 1000, gid: 1001 }],
    ['4242', { uid: 4242, gid: 0 }],
    ['app:staff', { uid: 1000, gid: 50 }],
    ['app:77', { uid: 1000, gid: 77 }],
    ['0:0', { uid: 0, gid: 0 }],
    ['nobody', { uid: 65534, gid: 65534 }],
  ];
  for (const [user, want] of cases) assert.deepEqual(resolveUser(user, passwd, group), want, user);
  assert.throws(
    () => resolveUser('ghost', passwd, group),
    /User "ghost": no user "ghost" in the guest's \/etc\/passwd/,
  );
  assert.throws(() => resolveUser('app:ghosts', passwd, group), /no group "ghosts" in the guest's \/etc\/group/);
  assert.throws(() => resolveUser('99999999999', passwd, group), /no user/);
});
