import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AppError } from '../errors.js';
import { StateLock, stateLockName } from './statelock.js';

const root = mkdtempSync(join(tmpdir(), 'statelock-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('a second lock on the same state dir is refused and names the holder; release frees it', async () => {
  const dir = join(root, 'a');
  mkdirSync(dir);
  const first = await StateLock.acquire(dir, 4242);
  await assert.rejects(StateLock.acquire(dir), (e: unknown) => e instanceof AppError && e.code === 'precondition' && /already running on state dir .*\/a \(pid 4242\)/.test(e.message));
  await first.release();
  const again = await StateLock.acquire(dir);
  await again.release();
});

test('another spelling of the same dir (a symlink) is the same lock; another dir is not', async () => {
  const dir = join(root, 'b');
  mkdirSync(dir);
  symlinkSync(dir, join(root, 'b-link'));
  mkdirSync(join(root, 'c'));
  const lock = await StateLock.acquire(dir);
  try {
    await assert.rejects(StateLock.acquire(join(root, 'b-link')), /already running/);
    const other = await StateLock.acquire(join(root, 'c'));
    await other.release();
  } finally {
    await lock.release();
  }
});

test('the lock of a process killed with SIGKILL is free at once', async () => {
  const dir = join(root, 'd');
  mkdirSync(dir);
  const mod = new URL('./statelock.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', `const { StateLock } = await import(${JSON.stringify(mod)}); await StateLock.acquire(${JSON.stringify(dir)}); process.stdout.write('locked\\n'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
    child.on('exit', () => reject(new Error('child exited before locking')));
  });
  await assert.rejects(StateLock.acquire(dir), new RegExp(`pid ${child.pid}`));
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
  const lock = await StateLock.acquire(dir);
  await lock.release();
});

test('the lock name lives in the abstract namespace and differs per dir', () => {
  assert.ok(stateLockName('/x').startsWith('\0'));
  assert.notEqual(stateLockName('/x'), stateLockName('/y'));
});
