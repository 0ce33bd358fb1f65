import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Paths } from '../../system/paths.js';
import { NodeRunner } from '../../system/node-runner.js';
import { copyMemory, ramRoom } from './warm-memory.js';

const uid = process.getuid?.() ?? 0;

function setup(): { paths: Paths; src: string; done: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'warm-mem-'));
  const paths = new Paths({ HOME: root, XDG_STATE_HOME: join(root, 'state'), XDG_RUNTIME_DIR: join(root, 'run') }, uid);
  const src = join(root, 'ram.bin');
  writeFileSync(src, Buffer.concat([Buffer.alloc(8192), Buffer.from('guest page'), Buffer.alloc(4096)]));
  return {
    paths,
    src,
    done: () => {
      rmSync(paths.ramDir, { recursive: true, force: true });
      rmSync(root, { recursive: true, force: true });
    },
  };
}

const signal = new AbortController().signal;

test('guest memory copy: a private 0600 copy in a private dir on /dev/shm; a second copy for the same VM is refused', async () => {
  const s = setup();
  try {
    const vm = { id: 'a'.repeat(32), memoryMib: 1 };
    const out = await copyMemory(s.paths, new NodeRunner(), vm, s.src, signal);
    assert.equal(out, s.paths.ramFile(vm.id));
    assert.ok(out.startsWith('/dev/shm/banger-'));
    assert.deepEqual(readFileSync(out), readFileSync(s.src));
    assert.equal(lstatSync(out).mode & 0o777, 0o600);
    assert.equal(lstatSync(s.paths.ramDir).mode & 0o777, 0o700);
    await assert.rejects(copyMemory(s.paths, new NodeRunner(), vm, s.src, signal), /EEXIST/);
  } finally {
    s.done();
  }
});

test('guest memory copy: no room for the whole memory is refused before anything is made', async () => {
  const s = setup();
  try {
    const vm = { id: 'b'.repeat(32), memoryMib: 64 * 1024 * 1024 };
    assert.match((await ramRoom(s.paths, vm.memoryMib)) ?? '', /MiB free, less than the VM's memory/);
    await assert.rejects(copyMemory(s.paths, new NodeRunner(), vm, s.src, signal), /less than the VM's memory/);
    assert.throws(() => lstatSync(s.paths.ramFile(vm.id)), /ENOENT/);
  } finally {
    s.done();
  }
});

test('guest memory copy: a symlink planted where the private dir goes is never followed', async () => {
  const s = setup();
  const elsewhere = mkdtempSync(join(tmpdir(), 'warm-mem-target-'));
  try {
    symlinkSync(elsewhere, s.paths.ramDir);
    assert.match((await ramRoom(s.paths, 1)) ?? '', /is a symbolic link/);
    await assert.rejects(copyMemory(s.paths, new NodeRunner(), { id: 'c'.repeat(32), memoryMib: 1 }, s.src, signal));
    assert.deepEqual(readFileSync(s.src).length, 8192 + 10 + 4096);
    assert.throws(() => lstatSync(join(elsewhere, `${'c'.repeat(32)}.ram`)), /ENOENT/);
  } finally {
    rmSync(s.paths.ramDir, { force: true });
    s.done();
    rmSync(elsewhere, { recursive: true, force: true });
  }
});
