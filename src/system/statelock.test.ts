import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AppError } from '../errors.js';
import { findWriteLock, StateLock } from './statelock.js';

const root = mkdtempSync(join(tmpdir(), 'statelock-'));
after(() => rmSync(root, { recursive: true, force: true }));

function dir(name: string): { lock: string; state: string } {
  const state = join(root, name);
  mkdirSync(state);
  return { lock: join(state, 'bangerd.lock'), state };
}

test('a second lock on the same state dir is refused and names the holder; release frees it', async () => {
  const { lock, state } = dir('a');
  const first = await StateLock.acquire(lock, state);
  assert.equal(statSync(lock).mode & 0o777, 0o600);
  assert.deepEqual(await StateLock.holder(lock), { pid: process.pid });
  await assert.rejects(
    StateLock.acquire(lock, state),
    (e: unknown) =>
      e instanceof AppError &&
      e.code === 'precondition' &&
      e.message === `bangerd is already running on state dir ${state} (pid ${process.pid})`,
  );
  first.release();
  assert.equal(await StateLock.holder(lock), undefined);
  (await StateLock.acquire(lock, state)).release();
});

test('another path to the same file (a symlinked state dir) is the same lock; another dir is not', async () => {
  const { lock, state } = dir('b');
  symlinkSync(state, join(root, 'b-link'));
  const other = dir('c');
  const held = await StateLock.acquire(lock, state);
  try {
    await assert.rejects(
      StateLock.acquire(join(root, 'b-link', 'bangerd.lock'), join(root, 'b-link')),
      /already running/,
    );
    (await StateLock.acquire(other.lock, other.state)).release();
  } finally {
    held.release();
  }
});

test('the lock of a process killed with SIGKILL is free at once, and no child of the holder keeps it', async () => {
  const { lock, state } = dir('d');
  const mod = new URL('./statelock.js', import.meta.url).href;
  // The holder also starts a long-lived child, as the daemon starts VMMs that outlive it.
  const code = `const { StateLock } = await import(${JSON.stringify(mod)}); await StateLock.acquire(${JSON.stringify(lock)}, '.');
    const { spawn } = await import('node:child_process'); const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { detached: true, stdio: 'ignore' }); c.unref();
    process.stdout.write('locked ' + c.pid + '\\n'); setInterval(() => {}, 1000);`;
  const holder = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const grandchild = await new Promise<number>((resolve, reject) => {
    holder.stdout.on('data', (d: Buffer) => {
      const m = /locked (\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
    holder.on('exit', () => reject(new Error('holder exited before locking')));
  });
  try {
    // The holder keeps no reference to its lock and goes on working: the lock must survive that.
    assert.deepEqual(await StateLock.holder(lock), { pid: holder.pid });
    await assert.rejects(StateLock.acquire(lock, state), new RegExp(`pid ${holder.pid}`));
    const exited = new Promise((r) => holder.on('exit', r));
    holder.kill('SIGKILL');
    await exited;
    (await StateLock.acquire(lock, state)).release();
  } finally {
    holder.kill('SIGKILL');
    process.kill(grandchild, 'SIGKILL');
  }
});

test('findWriteLock: matches device and inode, skips readers and waiters', () => {
  const dev = 0xfe00; // major 0xfe, minor 0
  const text = [
    '1: POSIX  ADVISORY  READ 11 fe:00:42 128 128',
    '2: POSIX  ADVISORY  WRITE 12 fe:01:42 1073741824 1073742335',
    '3: POSIX  ADVISORY  WRITE 13 fe:00:43 1073741824 1073742335',
    '3: -> POSIX  ADVISORY  WRITE 99 fe:00:42 1073741824 1073742335',
    '4: POSIX  ADVISORY  WRITE 14 fe:00:42 1073741824 1073742335',
  ].join('\n');
  assert.deepEqual(findWriteLock(text, dev, 42), { pid: 14 });
  assert.equal(findWriteLock(text, dev, 44), undefined);
  assert.deepEqual(findWriteLock('1: POSIX  ADVISORY  WRITE 0 fe:00:42 0 EOF', dev, 42), { pid: undefined });
  // A device number with a large minor: its bits above the low 8 live from bit 20 up (glibc makedev).
  assert.deepEqual(
    findWriteLock('1: POSIX  ADVISORY  WRITE 7 103:1ff:9 0 EOF', (0x103 << 8) | (0x100 << 12) | 0xff, 9),
    { pid: 7 },
  );
});
