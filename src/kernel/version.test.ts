import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelRelease } from './version.js';

function bzImage(version: string): Buffer {
  const b = Buffer.alloc(0x400);
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x300 - 0x200, 0x20e);
  b.write(`${version} (debian-kernel@lists.debian.org) #1 SMP\0`, 0x300, 'latin1');
  return b;
}

test('kernel release from a bzImage header and an ELF banner', () => {
  const cases: [Buffer, 'bzImage' | 'elf', string | undefined][] = [
    [bzImage('6.1.0-56-cloud-amd64'), 'bzImage', '6.1.0-56-cloud-amd64'],
    [Buffer.concat([Buffer.from('\x7fELF....'), Buffer.from('Linux version 6.6.9 (root@x) #1 SMP')]), 'elf', '6.6.9'],
    [Buffer.from('\x7fELF no banner'), 'elf', undefined],
    [Buffer.alloc(16), 'bzImage', undefined],
  ];
  for (const [buf, fmt, want] of cases) assert.equal(kernelRelease(buf, fmt), want);
});
