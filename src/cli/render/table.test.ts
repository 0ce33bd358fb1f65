import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, formatDuration, keyValues, table } from './table.js';

test('tables, key/value rows, bytes and durations', () => {
  assert.equal(
    table(
      ['A', 'BB'],
      [
        ['x', 'y'],
        ['long', 'z'],
      ],
    ),
    'A     BB\nx     y\nlong  z\n',
  );
  assert.equal(
    keyValues([
      ['name', 'dev'],
      ['id', 'abc'],
    ]),
    'name  dev\nid    abc\n',
  );
  const bytes: [number, string][] = [
    [512, '512B'],
    [1536, '1.5K'],
    [8 * 2 ** 30, '8G'],
    [10.5 * 1048576, '11M'],
  ];
  for (const [n, s] of bytes) assert.equal(formatBytes(n), s);
  assert.equal(formatDuration(250), '250 ms');
  assert.equal(formatDuration(21_900), '21.9s');
  assert.equal(formatDuration(126_000), '2m6s');
});
