import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate } from 'node:timers/promises';
import { AppError } from '../errors.js';
import { LineDecoder, LineSplitter, WIRE_LIMITS } from './protocol.js';

function assertBadRequest(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, pattern);
    return true;
  });
}

test('the wire limits: 1 MiB requests, a bounded wait for the request', () => {
  assert.equal(WIRE_LIMITS.maxRequestBytes, 1024 * 1024);
  assert.ok(WIRE_LIMITS.requestTimeoutMs > 0);
});

test('LineDecoder splits lines across and within chunks', () => {
  const cases: { name: string; chunks: (string | Buffer)[]; want: unknown[] }[] = [
    { name: 'one line', chunks: ['{"a":1}\n'], want: [{ a: 1 }] },
    { name: 'two lines in one chunk', chunks: ['1\n2\n'], want: [1, 2] },
    { name: 'a line across chunks', chunks: ['{"a"', ':', '[1,', '2]}\n'], want: [{ a: [1, 2] }] },
    { name: 'blank lines and CRLF', chunks: ['\n  \n{"b":2}\r\n'], want: [{ b: 2 }] },
    { name: 'no newline yet', chunks: ['{"a":1}'], want: [] },
    { name: 'buffers', chunks: [Buffer.from('[1]\n[2'), Buffer.from(']\n')], want: [[1], [2]] },
    // "é" is two bytes; each lands in its own chunk.
    {
      name: 'a UTF-8 character split across buffers',
      chunks: [Buffer.from([0x22, 0xc3]), Buffer.from([0xa9, 0x22, 0x0a])],
      want: ['é'],
    },
  ];
  for (const c of cases) {
    const d = new LineDecoder();
    const got = c.chunks.flatMap((ch) => d.push(ch));
    assert.deepEqual(got, c.want, c.name);
  }
});

test('LineDecoder refuses what is not a JSON line', () => {
  const cases: [Buffer | string, RegExp][] = [
    ['{not json\n', /not valid JSON/],
    [Buffer.from([0x22, 0xff, 0xfe, 0x22, 0x0a]), /not valid UTF-8/],
    [Buffer.from([0x22, 0xc3, 0x22, 0x0a]), /not valid UTF-8/],
    [Buffer.from([0x00, 0x01, 0x02, 0x0a]), /not valid JSON/],
  ];
  for (const [chunk, pattern] of cases) assertBadRequest(() => new LineDecoder().push(chunk), pattern);
});

test('LineDecoder refuses a line over its limit as soon as the limit is passed', () => {
  const d = new LineDecoder(8);
  assert.deepEqual(d.push('12345678\n'), [12345678], 'exactly the limit is accepted');
  const long = new LineDecoder(8);
  assert.deepEqual(long.push('1234'), []);
  // No newline has arrived: the ninth byte is enough to refuse.
  assertBadRequest(() => long.push('56789'), /longer than 8 bytes/);
  assertBadRequest(() => new LineDecoder(8).push('123456789\n'), /longer than 8 bytes/);
});

// A line dribbled one byte per chunk must cost linear time: the decoder looks
// only at the new bytes for the newline. The quadratic version took ~33 s for
// 256 KiB this way and minutes for 1 MiB; the timeout only guards against a hang.
test('LineDecoder scans only new bytes (1 MiB in 1-byte chunks)', { timeout: 60_000 }, async (t) => {
  const d = new LineDecoder(WIRE_LIMITS.maxRequestBytes);
  const n = WIRE_LIMITS.maxRequestBytes - 2;
  d.push('"');
  for (let i = 0; i < n; i++) {
    assert.equal(d.push('x').length, 0);
    // Lets the test timeout fire (and end the loop) if this is slow.
    if (i % 4096 === 0) await setImmediate();
    if (t.signal.aborted) return;
  }
  const [line] = d.push('"\n') as string[];
  assert.equal(line?.length, n);
});

// Socket reads arrive as separate buffers. Keeping each piece of an incomplete
// line costs a Buffer object per read: ~140 MB of RSS for a 1 MiB line read one
// byte at a time. One doubling buffer holds at most twice the line.
test(
  'LineSplitter holds an incomplete line in at most twice its size (1 MiB in 1-byte reads)',
  { timeout: 60_000 },
  async (t) => {
    const s = new LineSplitter(WIRE_LIMITS.maxRequestBytes);
    const n = WIRE_LIMITS.maxRequestBytes;
    const rssBefore = process.memoryUsage().rss;
    for (let i = 0; i < n; i++) {
      assert.equal(s.push(new Uint8Array([0x78])).length, 0);
      if (i % 4096 === 0) await setImmediate();
      if (t.signal.aborted) return;
    }
    const grown = process.memoryUsage().rss - rssBefore;
    assert.ok(s.retainedBytes <= 2 * n, `${s.retainedBytes} bytes retained for ${n}`);
    assert.ok(grown < 64 * 1024 * 1024, `RSS grew by ${Math.round(grown / 1048576)} MiB for a ${n}-byte line`);
    const [line] = s.push('\n');
    assert.equal(line?.length, n);
    assert.equal(s.retainedBytes, 0, 'released once the line is complete');
  },
);
