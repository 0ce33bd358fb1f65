import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cutConsole, previousLog, readConsoleTail } from './console.js';

const root = mkdtempSync(join(tmpdir(), 'console-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const file = (): string => join(root, `console-${n++}.log`);

test('a log past the limit is cut to empty, its tail kept from a line start, and an appending writer continues at the new end', async () => {
  const path = file();
  const fd = openSync(path, 'a');
  try {
    const line = `${'y'.repeat(63)}\n`;
    writeSync(fd, line.repeat(3000));
    writeSync(fd, 'the last line\n');
    assert.equal(await cutConsole(path, 100_000, 1000), true);
    assert.equal(statSync(path).size, 0);
    const kept = readFileSync(previousLog(path), 'utf8');
    assert.ok(kept.length <= 1000);
    assert.ok(kept.startsWith('y'), 'starts at a line start');
    assert.ok(kept.endsWith('the last line\n'));
    writeSync(fd, 'after the cut\n');
    assert.equal(readFileSync(path, 'utf8'), 'after the cut\n', 'no hole before the new bytes');
  } finally {
    closeSync(fd);
  }
});

test('a log within the limit, or none at all, is left alone', async () => {
  const path = file();
  writeFileSync(path, 'short\n');
  assert.equal(await cutConsole(path, 100, 10), false);
  assert.equal(readFileSync(path, 'utf8'), 'short\n');
  assert.equal(await cutConsole(join(root, 'missing.log')), false);
});

test('the tail continues from the kept part of the last cut and never exceeds the bound', async () => {
  const path = file();
  writeFileSync(previousLog(path), 'old-1\nold-2\n');
  writeFileSync(path, 'new-1\n');
  assert.deepEqual(await readConsoleTail(path, 1000), { text: 'old-1\nold-2\nnew-1\n', size: 6 });
  assert.deepEqual(await readConsoleTail(path, 9), { text: 'd-2\nnew-1\n'.slice(-9), size: 6 });
  assert.deepEqual(await readConsoleTail(path, 4), { text: '-1\n'.padStart(4, 'w'), size: 6 });
  assert.deepEqual(await readConsoleTail(join(root, 'none.log'), 10), { text: '', size: 0 });
});
