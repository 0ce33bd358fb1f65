import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseHandlesFile, readHandlesFile } from './handles.js';

const root = mkdtempSync(join(tmpdir(), 'handles-'));
after(() => rmSync(root, { recursive: true, force: true }));

const good = { pid: 42, startTime: 1234, controlSocket: '/run/x.qmp', sshPort: 2222 };

test('readHandlesFile: missing only on ENOENT; a directory in its place is a problem naming the file', async () => {
  assert.deepEqual(await readHandlesFile(join(root, 'absent.json')), { state: 'missing' });
  const dir = join(root, 'dir.json');
  mkdirSync(dir);
  assert.deepEqual(await readHandlesFile(dir), { state: 'corrupt', problem: `cannot read ${dir}: EISDIR` });
  const ok = join(root, 'ok.json');
  writeFileSync(ok, `${JSON.stringify(good)}\n`);
  assert.deepEqual(await readHandlesFile(ok), { state: 'ok', handles: good });
});

for (const [what, text, re] of [
  ['empty', '', /^F is not valid JSON/],
  ['truncated', '{"pid": 4', /^F is not valid JSON/],
  ['null', 'null', /^F does not hold VM handles/],
  ['an array', '[1]', /^F does not hold VM handles/],
  ['a string pid', JSON.stringify({ ...good, pid: '42' }), /^F does not hold VM handles \(pid: /],
  ['no start time', JSON.stringify({ pid: 42, controlSocket: 'x', sshPort: 1 }), /startTime/],
  ['no control socket', JSON.stringify({ pid: 42, startTime: 1, sshPort: 1 }), /controlSocket: missing/],
  ['a negative pid', JSON.stringify({ ...good, pid: -1 }), /pid/],
] as const) {
  test(`parseHandlesFile: ${what} is corrupt`, () => {
    const r = parseHandlesFile(text, 'F');
    assert.equal(r.state, 'corrupt');
    assert.match(r.state === 'corrupt' ? r.problem : '', re);
  });
}

test('parseHandlesFile keeps keys it does not know (written by a newer banger)', () => {
  assert.deepEqual(parseHandlesFile(JSON.stringify({ ...good, extra: 1 }), 'F'), {
    state: 'ok',
    handles: { ...good, extra: 1 },
  });
});

test('parseHandlesFile reads the qmpSocket an older banger wrote as controlSocket (a VMM started before the upgrade)', () => {
  const old = { pid: 42, startTime: 1234, qmpSocket: '/run/x.qmp', sshPort: 2222 };
  assert.deepEqual(parseHandlesFile(JSON.stringify(old), 'F'), { state: 'ok', handles: good });
});
