import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { layerProgressMessage, meteredLayer } from './layer-progress.js';

test('layerProgressMessage: bytes read and the rate so far', () => {
  const cases: [number, number, string][] = [
    [0, 0, 'applying mmdebstrap: 0.0 MiB read, 0.0 MiB/s'],
    [5 * 1048576, 2000, 'applying mmdebstrap: 5.0 MiB read, 2.5 MiB/s'],
    [300 * 1048576, 60_000, 'applying mmdebstrap: 300 MiB read, 5.0 MiB/s'],
  ];
  for (const [bytes, ms, want] of cases) assert.equal(layerProgressMessage('mmdebstrap', bytes, ms), want);
});

test('meteredLayer: passes every byte through and reports at most once per interval while bytes flow', async () => {
  let t = 0;
  const reports: string[] = [];
  const chunks = [1, 2, 3, 4].map(() => Buffer.alloc(1048576));
  // Each chunk arrives 600 ms after the previous: reports at 1200 ms and 2400 ms only.
  const src = Readable.from(chunks);
  const out = meteredLayer(src, 'x', (m) => reports.push(m), {
    everyMs: 1000,
    now: () => {
      const v = t;
      t += 600;
      return v;
    },
  });
  let total = 0;
  for await (const c of out) total += (c as Buffer).length;
  assert.equal(total, 4 * 1048576);
  assert.deepEqual(reports, ['applying x: 2.0 MiB read, 1.7 MiB/s', 'applying x: 4.0 MiB read, 1.7 MiB/s']);
});
