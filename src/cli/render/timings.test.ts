import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderTimings } from './timings.js';

test('renderTimings: one row per span, host then guest, then the host total with shares', () => {
  const cases = [
    {
      t: {
        at: '2026-01-01T00:00:00.000Z',
        total_ms: 20_000,
        spans: [
          { side: 'host' as const, name: 'root disk', start_ms: 0, ms: 120 },
          { side: 'host' as const, name: 'ssh ready', start_ms: 120, ms: 19_880 },
          { side: 'guest' as const, name: 'kernel', start_ms: 0, ms: 4_000 },
        ],
      },
      want: [
        'side   span       start    took    share',
        'host   root disk  +0 ms    120 ms  1%',
        'host   ssh ready  +120 ms  19.9s   99%',
        'guest  kernel     +0 ms    4.0s    20%',
        'host   total               20.0s   100%',
        '',
      ].join('\n'),
    },
    {
      t: {
        at: '2026-01-01T00:00:00.000Z',
        total_ms: 0,
        spans: [{ side: 'host' as const, name: 'x', start_ms: 0, ms: 0 }],
      },
      want: [
        'side  span   start  took  share',
        'host  x      +0 ms  0 ms  -',
        'host  total         0 ms  100%',
        '',
      ].join('\n'),
    },
  ];
  for (const c of cases) assert.equal(renderTimings(c.t), c.want);
});
