import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  encodeData,
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameError,
  MAX_FRAME_PAYLOAD,
  type BinFrame,
} from './binframes.js';

const frames: [string, BinFrame][] = [
  ['stdout data', { kind: 'data', stream: 'stdout', offset: 0, data: Buffer.from('hello\n') }],
  [
    'stderr data at a large offset',
    { kind: 'data', stream: 'stderr', offset: 2 ** 40 + 3, data: Buffer.from([0, 255]) },
  ],
  ['empty data', { kind: 'data', stream: 'stdout', offset: 7, data: Buffer.alloc(0) }],
  ['evicted', { kind: 'evicted', stream: 'stdout', offset: 8388608, lost: 1234 }],
  ['exit', { kind: 'exit', status: { exit_code: 3, signal: null, timed_out: false, error: null } }],
  ['error', { kind: 'error', error: { code: 'not_found', message: 'gone', op_id: 'op-1' } }],
  ['max payload', { kind: 'data', stream: 'stderr', offset: 1, data: Buffer.alloc(MAX_FRAME_PAYLOAD, 7) }],
];

test('binary frames: each kind round-trips, whole, byte by byte, and in uneven chunks', () => {
  for (const [name, f] of frames) {
    const bytes = encodeFrame(f);
    assert.equal(bytes.readUInt8(0), ['data', 'evicted', 'exit', 'error'].indexOf(f.kind) + 1, name);
    assert.deepEqual(new FrameDecoder().push(bytes), [f], `${name}: whole`);
    for (const step of [1, 3, 15, 16, 17, 1000]) {
      if (step === 1 && bytes.length > 4096) continue;
      const d = new FrameDecoder();
      const got: BinFrame[] = [];
      for (let i = 0; i < bytes.length; i += step) got.push(...d.push(bytes.subarray(i, i + step)));
      assert.deepEqual(got, [f], `${name}: in chunks of ${step}`);
      assert.equal(d.pending, 0);
    }
  }
});

test('binary frames: several frames in one chunk, and a frame split across chunks with the next', () => {
  const all = Buffer.concat(frames.map(([, f]) => encodeFrame(f)));
  assert.deepEqual(
    new FrameDecoder().push(all),
    frames.map(([, f]) => f),
  );
  const d = new FrameDecoder();
  const cut = FRAME_HEADER_BYTES + 3;
  assert.deepEqual(d.push(all.subarray(0, cut)), []);
  assert.equal(d.pending, cut);
  assert.deepEqual(
    d.push(all.subarray(cut)),
    frames.map(([, f]) => f),
  );
});

test('binary frames: the header layout is what docs/http-api.md says', () => {
  const b = encodeFrame({ kind: 'data', stream: 'stderr', offset: 258, data: Buffer.from('ab') });
  assert.equal(b.toString('hex'), '0102000000000002' + '0000000000000102' + '6162');
});

test('encodeData splits long output into frames of at most MAX_FRAME_PAYLOAD with their offsets', () => {
  const data = Buffer.alloc(MAX_FRAME_PAYLOAD * 2 + 5, 1);
  const got = new FrameDecoder().push(Buffer.concat(encodeData('stdout', 100, data)));
  assert.deepEqual(
    got.map((f) => (f.kind === 'data' ? [f.offset, f.data.length] : [])),
    [
      [100, MAX_FRAME_PAYLOAD],
      [100 + MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD],
      [100 + 2 * MAX_FRAME_PAYLOAD, 5],
    ],
  );
  assert.deepEqual(encodeData('stdout', 0, Buffer.alloc(0)), []);
});

test('binary frames: what is not a frame is refused', () => {
  const good = encodeFrame({ kind: 'data', stream: 'stdout', offset: 0, data: Buffer.from('x') });
  const bad = (mutate: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(good);
    mutate(b);
    return b;
  };
  const cases: [string, Buffer, RegExp][] = [
    ['kind 0', bad((b) => b.writeUInt8(0, 0)), /unknown frame kind/],
    ['kind 9', bad((b) => b.writeUInt8(9, 0)), /unknown frame kind/],
    ['stream 3', bad((b) => b.writeUInt8(3, 1)), /unknown stream/],
    ['reserved bytes', bad((b) => b.writeUInt8(1, 3)), /reserved/],
    ['too long', bad((b) => b.writeUInt32BE(MAX_FRAME_PAYLOAD + 1, 4)), /over/],
    ['offset beyond 2^53', bad((b) => b.writeBigUInt64BE(2n ** 60n, 8)), /2\^53/],
    [
      'exit with a stream',
      Buffer.concat([Buffer.from('03010000000000020000000000000000', 'hex'), Buffer.from('{}')]),
      /stream or an offset/,
    ],
    [
      'exit not JSON',
      Buffer.concat([Buffer.from('03000000000000020000000000000000', 'hex'), Buffer.from('{x')]),
      /not JSON/,
    ],
    [
      'evicted of 4 bytes',
      Buffer.concat([Buffer.from('02010000000000040000000000000000', 'hex'), Buffer.alloc(4)]),
      /not 8 bytes/,
    ],
  ];
  for (const [name, bytes, re] of cases) {
    const d = new FrameDecoder();
    assert.throws(
      () => d.push(bytes),
      (e: unknown) => e instanceof FrameError && re.test(e.message),
      name,
    );
    assert.throws(() => d.push(good), /already failed/, `${name}: the decoder stays failed`);
  }
  assert.throws(
    () => encodeFrame({ kind: 'data', stream: 'stdout', offset: 0, data: Buffer.alloc(MAX_FRAME_PAYLOAD + 1) }),
    /over/,
  );
  assert.throws(() => encodeFrame({ kind: 'data', stream: 'stdout', offset: -1, data: Buffer.alloc(1) }), /offset/);
});
