import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameDecoder } from './codec.js';
import { FrameType, HEADER_SIZE, MAX_PAYLOAD, type Frame } from './protocol.js';

const frames: Frame[] = [
  { type: FrameType.HELLO, session: 0, payload: Buffer.from('BANGERAG\x00\x01\x00\x01', 'latin1') },
  { type: FrameType.STDOUT, session: 7, payload: Buffer.alloc(0) },
  { type: FrameType.STDERR, session: 0xffffffff, payload: Buffer.from([0, 0xff, 0x0a, 0]) },
  { type: FrameType.FILE_DATA, session: 3, payload: Buffer.alloc(MAX_PAYLOAD, 0xab) },
  { type: 0xee, session: 1, payload: Buffer.from("unknown types are the reader's business") },
];
const wire = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.session, f.payload)));

test('encodeFrame lays out length, session and type big-endian before the payload', () => {
  assert.deepEqual(
    encodeFrame(0x23, 0x01020304, Buffer.from('hi')),
    Buffer.from([0, 0, 0, 2, 1, 2, 3, 4, 0x23, 0x68, 0x69]),
  );
  assert.deepEqual(encodeFrame(0x10, 9), Buffer.from([0, 0, 0, 0, 0, 0, 0, 9, 0x10]));
});

test('encodeFrame refuses what the wire cannot carry', () => {
  const cases: [string, () => Buffer, RegExp][] = [
    ['oversized payload', () => encodeFrame(1, 1, Buffer.alloc(MAX_PAYLOAD + 1)), /131073 bytes exceeds 131072/],
    ['negative session', () => encodeFrame(1, -1), /bad session id -1/],
    ['session over 32 bits', () => encodeFrame(1, 2 ** 32), /bad session id/],
    ['type over 8 bits', () => encodeFrame(256, 1), /bad frame type 256/],
  ];
  for (const [name, fn, re] of cases) assert.throws(fn, re, name);
});

test('FrameDecoder returns the same frames however the stream is cut', () => {
  for (const step of [1, 2, 5, HEADER_SIZE, 1000, 65536, wire.length]) {
    const d = new FrameDecoder();
    const got: Frame[] = [];
    for (let off = 0; off < wire.length; off += step) got.push(...d.push(wire.subarray(off, off + step)));
    assert.deepEqual(
      got.map((f) => ({ ...f, payload: Buffer.from(f.payload) })),
      frames,
      `chunks of ${step}`,
    );
    assert.equal(d.pending, 0);
  }
});

test('FrameDecoder holds an incomplete frame and counts its bytes', () => {
  const d = new FrameDecoder();
  const one = encodeFrame(FrameType.STDOUT, 1, Buffer.from('hello'));
  assert.deepEqual(d.push(one.subarray(0, 4)), []);
  assert.equal(d.pending, 4);
  assert.deepEqual(d.push(one.subarray(4, 12)), []);
  assert.equal(d.pending, 12);
  const [f] = d.push(one.subarray(12));
  assert.equal(f?.payload.toString(), 'hello');
  assert.equal(d.pending, 0);
});

test('FrameDecoder rejects an oversized length from the header alone and stays failed', () => {
  const cases: [string, number][] = [
    ['one byte over', MAX_PAYLOAD + 1],
    ['4 GiB', 0xffffffff],
  ];
  for (const [name, length] of cases) {
    const d = new FrameDecoder();
    const header = Buffer.alloc(HEADER_SIZE);
    header.writeUInt32BE(length, 0);
    assert.deepEqual(d.push(header.subarray(0, 8)), [], `${name}: 8 bytes are not a header yet`);
    assert.throws(
      () => d.push(header.subarray(8)),
      new RegExp(`payload length ${length} exceeds the maximum ${MAX_PAYLOAD}`),
      name,
    );
    assert.throws(() => d.push(encodeFrame(1, 0)), /exceeds/, `${name}: later input is refused too`);
    assert.equal(d.pending, 0, `${name}: nothing held`);
  }
});

test('FrameDecoder honours a smaller maximum', () => {
  const d = new FrameDecoder(16);
  assert.equal(d.push(encodeFrame(1, 1, Buffer.alloc(16))).length, 1);
  assert.throws(() => d.push(encodeFrame(1, 1, Buffer.alloc(17))), /payload length 17 exceeds the maximum 16/);
});
