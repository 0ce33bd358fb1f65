import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputBuffer } from './procbuffer.js';

describe('OutputBuffer', () => {
  const cases: {
    name: string;
    limit: number;
    writes: string[];
    from: number;
    max?: number;
    want: { offset: number; data: string; next: number; evicted: boolean; lost: number };
  }[] = [
    {
      name: 'reads everything from 0',
      limit: 100,
      writes: ['ab', 'cd'],
      from: 0,
      want: { offset: 0, data: 'abcd', next: 4, evicted: false, lost: 0 },
    },
    {
      name: 'reads from the middle of a chunk',
      limit: 100,
      writes: ['abc', 'def'],
      from: 2,
      want: { offset: 2, data: 'cdef', next: 6, evicted: false, lost: 0 },
    },
    {
      name: 'bounds a read by max',
      limit: 100,
      writes: ['abc', 'def'],
      from: 1,
      max: 3,
      want: { offset: 1, data: 'bcd', next: 4, evicted: false, lost: 0 },
    },
    {
      name: 'evicts whole chunks past the limit',
      limit: 4,
      writes: ['ab', 'cd', 'ef'],
      from: 2,
      want: { offset: 2, data: 'cdef', next: 6, evicted: false, lost: 0 },
    },
    {
      name: 'evicts part of a chunk past the limit',
      limit: 3,
      writes: ['abcd', 'ef'],
      from: 3,
      want: { offset: 3, data: 'def', next: 6, evicted: false, lost: 0 },
    },
    {
      name: 'attaching from an evicted offset says so and starts at the oldest kept byte',
      limit: 3,
      writes: ['abcd', 'ef'],
      from: 0,
      want: { offset: 3, data: 'def', next: 6, evicted: true, lost: 3 },
    },
    {
      name: 'a write larger than the limit keeps its tail',
      limit: 2,
      writes: ['abcdef'],
      from: 0,
      want: { offset: 4, data: 'ef', next: 6, evicted: true, lost: 4 },
    },
    {
      name: 'at the end reads nothing',
      limit: 10,
      writes: ['abc'],
      from: 3,
      want: { offset: 3, data: '', next: 3, evicted: false, lost: 0 },
    },
    {
      name: 'past the end is clamped to the end',
      limit: 10,
      writes: ['abc'],
      from: 50,
      want: { offset: 3, data: '', next: 3, evicted: false, lost: 0 },
    },
    {
      name: 'a negative offset reads from the oldest kept byte without calling it evicted',
      limit: 2,
      writes: ['abc'],
      from: -1,
      want: { offset: 1, data: 'bc', next: 3, evicted: false, lost: 0 },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const b = new OutputBuffer(c.limit);
      for (const w of c.writes) b.write(Buffer.from(w));
      const r = b.read(c.from, c.max);
      assert.deepEqual({ ...r, data: r.data.toString() }, c.want);
    });
  }

  it('keeps total and oldest across many evictions, never holding more than the limit', () => {
    const b = new OutputBuffer(10);
    let all = '';
    for (let i = 0; i < 50; i++) {
      const s = `<${i}>`;
      all += s;
      b.write(Buffer.from(s));
    }
    assert.equal(b.total, all.length);
    assert.equal(b.total - b.oldest, 10);
    assert.equal(b.read(0).data.toString(), all.slice(-10));
  });

  it('refuses a limit that is not a positive integer', () => {
    assert.throws(() => new OutputBuffer(0), /not a positive integer/);
  });
});
