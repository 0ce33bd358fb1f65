import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { AppError } from '../errors.js';
import { checkRuntimeDir, prepareDirs } from './dirs.js';
import { Paths } from './paths.js';

const UID = process.getuid?.() ?? 0;
/** nobody: a uid that is not ours. */
const OTHER_UID = 65534;
const isRoot = UID === 0;

function home(t: TestContext): { root: string; paths: Paths } {
  const root = mkdtempSync(join(tmpdir(), 'banger-dirs-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'run'), { mode: 0o700 });
  const paths = new Paths(
    {
      HOME: join(root, 'home'),
      XDG_STATE_HOME: join(root, 'state'),
      XDG_CACHE_HOME: join(root, 'cache'),
      XDG_CONFIG_HOME: join(root, 'config'),
      XDG_RUNTIME_DIR: join(root, 'run'),
    },
    UID,
  );
  return { root, paths };
}

const mode = (p: string): number => lstatSync(p).mode & 0o7777;

async function assertPrecondition(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, 'precondition');
    assert.match(e.message, pattern);
    assert.match(e.hint ?? '', /XDG_RUNTIME_DIR/);
    return true;
  });
}

test('the runtime dir defaults: $XDG_RUNTIME_DIR/banger, /run/banger for root, /tmp/banger-<uid> for others', () => {
  assert.equal(new Paths({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000).runtimeDir, '/run/user/1000/banger');
  assert.equal(new Paths({ XDG_RUNTIME_DIR: '/run/user/0' }, 0).runtimeDir, '/run/user/0/banger');
  assert.equal(new Paths({}, 0).runtimeDir, '/run/banger');
  assert.equal(new Paths({ XDG_RUNTIME_DIR: '' }, 0).runtimeDir, '/run/banger');
  assert.equal(new Paths({}, 1000).runtimeDir, '/tmp/banger-1000');
});

test('prepareDirs creates the runtime and state dirs 0700', async (t) => {
  const { paths } = home(t);
  await prepareDirs(paths, UID);
  assert.equal(mode(paths.runtimeDir), 0o700);
  assert.equal(mode(paths.stateDir), 0o700);
  assert.equal(mode(paths.sshDir), 0o700);
});

test('an existing runtime dir of ours is tightened to 0700; an existing state dir too', async (t) => {
  const { paths } = home(t);
  mkdirSync(paths.runtimeDir, { mode: 0o755 });
  chmodSync(paths.runtimeDir, 0o755);
  mkdirSync(paths.stateDir, { recursive: true });
  chmodSync(paths.stateDir, 0o755);
  await prepareDirs(paths, UID);
  assert.equal(mode(paths.runtimeDir), 0o700);
  assert.equal(mode(paths.stateDir), 0o700);
});

test('a planted symlink as the runtime dir is refused and its target left alone', async (t) => {
  const { root, paths } = home(t);
  const target = join(root, 'elsewhere');
  mkdirSync(target, { mode: 0o755 });
  chmodSync(target, 0o755);
  symlinkSync(target, paths.runtimeDir);
  await assertPrecondition(prepareDirs(paths, UID), new RegExp(`directory ${paths.runtimeDir} is a symbolic link`));
  assert.equal(mode(target), 0o755, 'the link target keeps its mode');
  assert.deepEqual(readdirSync(target), []);
  assert.throws(() => checkRuntimeDir(paths.runtimeDir, UID), /is a symbolic link/);

  rmSync(paths.runtimeDir);
  symlinkSync(join(root, 'missing'), paths.runtimeDir);
  await assertPrecondition(prepareDirs(paths, UID), /is a symbolic link/);
  assert.equal(existsSync(join(root, 'missing')), false, 'nothing is created through a dangling link');
});

test('a runtime dir owned by another uid is refused', { skip: isRoot ? false : 'needs root to chown' }, async (t) => {
  const { paths } = home(t);
  mkdirSync(paths.runtimeDir, { mode: 0o700 });
  chownSync(paths.runtimeDir, OTHER_UID, OTHER_UID);
  await assertPrecondition(
    prepareDirs(paths, UID),
    new RegExp(`belongs to uid ${OTHER_UID}, not to you \\(uid ${UID}\\)`),
  );
  assert.equal(statSync(paths.runtimeDir).uid, OTHER_UID);
  assert.equal(mode(paths.runtimeDir), 0o700);
  assert.throws(() => checkRuntimeDir(paths.runtimeDir, UID), /belongs to uid 65534/);
});

test('a runtime dir others can write to is refused, not chmod-ed', async (t) => {
  for (const bad of [0o777, 0o1777, 0o720, 0o702]) {
    const { paths } = home(t);
    mkdirSync(paths.runtimeDir);
    chmodSync(paths.runtimeDir, bad);
    await assertPrecondition(prepareDirs(paths, UID), /is writable by other users/);
    assert.equal(mode(paths.runtimeDir), bad);
  }
});

test('a runtime path that is not a directory is refused', async (t) => {
  const { paths } = home(t);
  writeFileSync(paths.runtimeDir, '');
  await assertPrecondition(prepareDirs(paths, UID), /is not a directory/);
  assert.throws(() => checkRuntimeDir(paths.runtimeDir, UID), /is not a directory/);
});

test('checkRuntimeDir accepts a missing dir and one of ours', async (t) => {
  const { paths } = home(t);
  checkRuntimeDir(paths.runtimeDir, UID);
  await prepareDirs(paths, UID);
  checkRuntimeDir(paths.runtimeDir, UID);
});
