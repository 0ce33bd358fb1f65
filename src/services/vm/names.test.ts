import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateName, validateVmName, vmNameProblem } from './names.js';

test('valid VM names', () => {
  for (const n of ['a', 'dev', 'dev-1', '0', 'a'.repeat(63), 'x-y-z']) assert.equal(vmNameProblem(n), undefined, n);
});

test('invalid VM names say what and where', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['Bad_Name', /character "B" at position 1/],
    ['bad_name', /character "_" at position 4/],
    ['a'.repeat(64), /64 characters long; the limit is 63/],
    ['-dev', /must not start with "-"/],
    ['dev-', /must not end with "-"/],
    ['dev name', /character " " at position 4/],
    ['dev\n', /character "\\n" at position 4/],
    ['dév', /character "é" at position 2/],
    // Positions count characters, not UTF-16 units: an emoji is named whole, never half a surrogate pair.
    ['dev😀', /^character "😀" at position 4 /],
    ['😀-x', /^character "😀" at position 1 /],
  ];
  for (const [name, re] of cases) {
    assert.match(vmNameProblem(name) ?? '', re, JSON.stringify(name));
    assert.throws(
      () => validateVmName(name),
      (e: Error & { code?: string }) => e.code === 'bad_request',
    );
  }
});

test('generated names avoid taken ones and are valid', () => {
  const taken = new Set<string>();
  let i = 0;
  const seq = [0, 0, 0, 0, 0.5, 0.5];
  const rnd = (): number => seq[i++ % seq.length] as number;
  const first = generateName((n) => taken.has(n), rnd);
  taken.add(first);
  const second = generateName((n) => taken.has(n), rnd);
  assert.notEqual(first, second);
  for (const n of [first, second]) assert.equal(vmNameProblem(n), undefined);
  // Everything taken in the word list: a numeric suffix follows.
  const suffixed = generateName(
    (n) => !/-\d+$/.test(n),
    () => 0,
  );
  assert.match(suffixed, /-2$/);
});
