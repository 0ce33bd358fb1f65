import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeRunner } from './node-runner.js';

async function* chunks(n: number, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < n; i++) yield Buffer.alloc(size, 0x61 + (i % 26));
}

test('run with a streamed stdin: the command reads it all; one that stops reading ends with its own status', async () => {
  const r = new NodeRunner();
  const wc = await r.run(['wc', '-c'], { stdin: chunks(64, 64 * 1024) });
  assert.equal(wc.code, 0);
  assert.equal(wc.stdout.trim(), String(64 * 64 * 1024));
  // `sh -c 'exit 7'` never reads: the pipe breaks; the result is the command's, not an EPIPE.
  const early = await r.run(['sh', '-c', 'exit 7'], { stdin: chunks(256, 64 * 1024) });
  assert.equal(early.code, 7);
});
