import assert from 'node:assert/strict';
import { test } from 'node:test';
import { quietContext } from '../context.js';
import { guestSpans, mark, SpanRecorder, timed, withSpans } from './spans.js';

/** A clock that returns the given instants in turn. */
function clock(...ticks: number[]): () => number {
  let i = 0;
  return () => ticks[Math.min(i++, ticks.length - 1)] as number;
}
const wall = (): Date => new Date('2026-01-02T03:04:05.000Z');

test('SpanRecorder: marks end the open span; time() closes its own; finish adds guest spans and the total', async () => {
  // t0=100; mark a @110; time b: mark closes a @150, opens b @150, closes @400; mark c @450; finish closes c @1000, total @1100.
  const rec = new SpanRecorder(clock(100, 110, 150, 150, 400, 450, 1000, 1100), wall);
  rec.mark('a');
  assert.equal(await rec.time('b', async () => 7), 7);
  rec.mark('c');
  const t = rec.finish([{ side: 'guest', name: 'kernel', start_ms: 0, ms: 5 }]);
  assert.deepEqual(t, {
    at: '2026-01-02T03:04:05.000Z',
    total_ms: 1000,
    spans: [
      { side: 'host', name: 'a', start_ms: 10, ms: 40 },
      { side: 'host', name: 'b', start_ms: 50, ms: 250 },
      { side: 'host', name: 'c', start_ms: 350, ms: 550 },
      { side: 'guest', name: 'kernel', start_ms: 0, ms: 5 },
    ],
  });
});

test('SpanRecorder: a step that throws still ends its span', async () => {
  const rec = new SpanRecorder(clock(0, 10, 30, 40), wall);
  await assert.rejects(
    rec.time('boom', () => Promise.reject(new Error('x'))),
    /x/,
  );
  assert.deepEqual(rec.finish().spans, [{ side: 'host', name: 'boom', start_ms: 10, ms: 20 }]);
});

test('timed/mark: record with a recorder in the context, run plainly without one', async () => {
  const rec = new SpanRecorder(clock(0, 1, 3, 5, 8), wall);
  const ctx = withSpans(quietContext(), rec);
  assert.equal(await timed(ctx, 'disk', async () => 'ok'), 'ok');
  mark(ctx, 'wait');
  assert.deepEqual(
    rec.finish().spans.map((s) => [s.name, s.ms]),
    [
      ['disk', 2],
      ['wait', 3],
    ],
  );
  assert.equal(await timed(quietContext(), 'disk', async () => 'plain'), 'plain');
  mark(quietContext(), 'nothing');
});

test('guestSpans: kernel, initramfs and userspace spans from console timestamps and the agent uptime', () => {
  const log = [
    '[    0.000000] Linux version 6.1.0-57-cloud-amd64',
    'SeaBIOS noise without a stamp',
    '[    3.250000] Run /init as init process',
    'banger-init: switching to /sbin/init on /dev/vda',
    '\x1b[0m[    6.500000] systemd[1]: systemd 252.39-1~deb12u1 running in system mode\r',
    '[    7.000000] systemd[1]: Hostname set to <x>.',
    '[  OK  ] Started banger-agent.service.',
  ].join('\n');
  const cases: { name: string; text: string; uptime?: number; want: [string, number, number][] }[] = [
    {
      name: 'full boot with the agent',
      text: log,
      uptime: 9000,
      want: [
        ['kernel', 0, 3250],
        ['initramfs', 3250, 3250],
        ['userspace to agent', 6500, 2500],
      ],
    },
    {
      name: 'no agent uptime',
      text: log,
      want: [
        ['kernel', 0, 3250],
        ['initramfs', 3250, 3250],
      ],
    },
    {
      name: 'no systemd (banger-init stays PID 1)',
      text: '[    2.000001] Run /init as init process\n',
      uptime: 2500,
      want: [
        ['kernel', 0, 2000],
        ['userspace to agent', 2000, 500],
      ],
    },
    { name: 'no timestamps (printk.time off)', text: 'Run /init as init process\nsystemd[1]: x\n', want: [] },
    { name: 'empty log', text: '', uptime: 100, want: [['userspace to agent', 0, 100]] },
    {
      name: 'milestones out of order count only in order',
      text: '[ 1.0] systemd[1]: early\n[ 2.0] Run /init as init process\n',
      want: [['kernel', 0, 2000]],
    },
    {
      name: 'an uptime before the last milestone is ignored',
      text: log,
      uptime: 10,
      want: [
        ['kernel', 0, 3250],
        ['initramfs', 3250, 3250],
      ],
    },
  ];
  for (const c of cases) {
    const got = guestSpans(c.text, c.uptime).map((s) => [s.name, s.start_ms, s.ms]);
    assert.deepEqual(got, c.want, c.name);
    assert.ok(
      guestSpans(c.text, c.uptime).every((s) => s.side === 'guest'),
      c.name,
    );
  }
});
