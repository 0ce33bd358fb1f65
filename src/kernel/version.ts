/**
 * Kernel release string from the image itself. bzImage: the header's
 * kernel_version field (offset at 0x20e, relative to 0x200) points at
 * "6.1.0-56-cloud-amd64 (debian-kernel@…) #1 SMP…". ELF vmlinux: the
 * "Linux version <release> " banner in .rodata.
 */
export function kernelRelease(buf: Buffer, format: 'bzImage' | 'elf'): string | undefined {
  if (format === 'bzImage' && buf.length > 0x210) {
    const off = buf.readUInt16LE(0x20e) + 0x200;
    if (off < buf.length) {
      const end = buf.indexOf(0, off);
      const s = buf.subarray(off, end < 0 ? Math.min(buf.length, off + 256) : end).toString('latin1');
      return firstToken(s);
    }
    return undefined;
  }
  const i = buf.indexOf('Linux version ');
  if (i < 0) return undefined;
  return firstToken(buf.subarray(i + 14, i + 14 + 256).toString('latin1'));
}

function firstToken(s: string): string | undefined {
  const t = s.split(/[\s\0]/)[0];
  return t && /^[0-9][A-Za-z0-9._+-]*$/.test(t) ? t : undefined;
}
