/** A minimal bzImage for tests that import kernels: boot-protocol magic plus a kernel_version string (never booted). */
export function fakeBzImage(release: string): Buffer {
  const b = Buffer.alloc(0x1000, 0x90);
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x400 - 0x200, 0x20e);
  b.write(`${release} (test@banger) #1 SMP\0`, 0x400, 'latin1');
  return b;
}
