/**
 * From `apt-cache depends` output, the package named by the first 'Depends:'
 * line (an alternative marked with a leading '|' counts too; 'PreDepends:' and
 * other relations do not). '<...>' virtual-package markers and ':arch'
 * qualifiers are stripped. Undefined if there is no such line.
 */
export function parseAptDepends(text: string): string | undefined {
  for (const raw of text.split('\n')) {
    const m = /^\s*\|?Depends:\s*(\S+)/.exec(raw);
    if (m === null || m[1] === undefined) continue;
    let name = m[1];
    if (name.startsWith('<') && name.endsWith('>')) name = name.slice(1, -1);
    const colon = name.indexOf(':');
    if (colon >= 0) name = name.slice(0, colon);
    if (name !== '') return name;
  }
  return undefined;
}

/**
 * Kernel release from a vmlinuz file name or from a package file listing
 * (`dpkg -L`, `dpkg-deb -c`): the first 'vmlinuz-<release>' path component,
 * where the release starts with a digit, e.g. 'boot/vmlinuz-6.1.0-56-cloud-amd64'
 * → '6.1.0-56-cloud-amd64'.
 */
export function kernelReleaseFromVmlinuz(name: string): string | undefined {
  const m = /(?:^|[\s/])vmlinuz-([0-9][A-Za-z0-9._+~-]*)(?=\s|$)/m.exec(name);
  return m?.[1];
}

/**
 * The kernel image format from the first bytes of the file: 'bzImage' when the
 * x86 boot protocol signature 'HdrS' is at offset 0x202, 'elf' when the file
 * starts with the ELF magic, else 'unknown'. Needs at least 0x206 bytes to
 * recognise a bzImage.
 */
export function kernelFormat(head: Buffer): 'bzImage' | 'elf' | 'unknown' {
  if (head.length >= 0x206 && head.toString('latin1', 0x202, 0x206) === 'HdrS') return 'bzImage';
  if (head.length >= 4 && head[0] === 0x7f && head.toString('latin1', 1, 4) === 'ELF') return 'elf';
  return 'unknown';
}
