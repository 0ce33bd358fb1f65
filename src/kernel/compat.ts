import { open } from 'node:fs/promises';
import { AppError, precondition } from '../errors.js';
import { moduleName } from './modules-dep.js';

export type KernelFormat = 'bzImage' | 'elf';

export interface KernelTraits {
  format: KernelFormat;
  /** The ELF has a XEN_ELFNOTE_PHYS32_ENTRY (type 18) note, which qemu needs to boot an uncompressed ELF. */
  pvhNote: boolean;
  virtioMmio: 'builtin' | 'module' | 'absent' | 'unknown';
}

const PT_NOTE = 4;
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const ELF64_HEADER = 64;
const ELF64_PHDR = 56;
/** More program headers than any kernel has; bounds work on hostile input. */
const MAX_PHDRS = 256;
/** Bytes read from a file to find the program headers (they follow the ELF header in a vmlinux). */
const HEADERS_READ = 64 * 1024;
/** Upper bound on a note segment read from a file. */
const MAX_NOTE_SEGMENT = 1 << 20;

interface Segment {
  offset: number;
  size: number;
}

interface Elf64 {
  le: boolean;
  notes: Segment[];
}

const align4 = (n: number): number => (n + 3) & ~3;

/**
 * ELF64 identity and its PT_NOTE segments (file offset and size) from the
 * program header table, or undefined when `buf` is not an ELF64 or its
 * program headers lie outside `buf`.
 */
function parseElf64(buf: Buffer): Elf64 | undefined {
  if (buf.length < ELF64_HEADER || buf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  if (buf[4] !== 2) return undefined;
  const data = buf[5];
  if (data !== 1 && data !== 2) return undefined;
  const le = data === 1;
  const u16 = (off: number): number => (le ? buf.readUInt16LE(off) : buf.readUInt16BE(off));
  const u32 = (off: number): number => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const u64 = (off: number): number => {
    const v = le ? buf.readBigUInt64LE(off) : buf.readBigUInt64BE(off);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  };
  const phoff = u64(0x20);
  const phentsize = u16(0x36);
  const phnum = u16(0x38);
  if (phentsize < ELF64_PHDR || phnum === 0 || phnum > MAX_PHDRS) return undefined;
  if (phoff + phentsize * phnum > buf.length) return undefined;
  const notes: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (u32(ph) !== PT_NOTE) continue;
    notes.push({ offset: u64(ph + 8), size: u64(ph + 32) });
  }
  return { le, notes };
}

/** True when the note segment `seg` (bytes) holds a note named "Xen" of type 18. */
function segmentHasPvh(seg: Buffer, le: boolean): boolean {
  const u32 = (off: number): number => (le ? seg.readUInt32LE(off) : seg.readUInt32BE(off));
  let off = 0;
  while (off + 12 <= seg.length) {
    const namesz = u32(off);
    const descsz = u32(off + 4);
    const type = u32(off + 8);
    const nameStart = off + 12;
    const next = nameStart + align4(namesz) + align4(descsz);
    if (nameStart + namesz > seg.length) return false;
    if (
      type === XEN_ELFNOTE_PHYS32_ENTRY &&
      namesz === 4 &&
      seg.toString('latin1', nameStart, nameStart + 4) === 'Xen\0'
    )
      return true;
    if (next <= off) return false;
    off = next;
  }
  return false;
}

/**
 * Reports whether a Xen note of type 18 (the PVH entry point) exists in the
 * ELF64's PT_NOTE segments. Pure: only segments inside `elf` are inspected,
 * and a real vmlinux keeps its notes after .text (many MiB into the file), so
 * a short head is not enough; use hasPvhNoteInFile for a file on disk.
 * Anything that is not a well-formed ELF64 gives false.
 */
export function hasPvhNote(elf: Buffer): boolean {
  const parsed = parseElf64(elf);
  if (parsed === undefined) return false;
  return parsed.notes.some(
    (n) =>
      n.offset < elf.length &&
      segmentHasPvh(elf.subarray(n.offset, Math.min(elf.length, n.offset + n.size)), parsed.le),
  );
}

/**
 * hasPvhNote for a vmlinux on disk: reads the first 64 KiB (ELF and program
 * headers), then each PT_NOTE segment (up to 1 MiB each).
 */
export async function hasPvhNoteInFile(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const read = async (offset: number, size: number): Promise<Buffer> => {
      const buf = Buffer.alloc(size);
      const { bytesRead } = await fh.read(buf, 0, size, offset);
      return buf.subarray(0, bytesRead);
    };
    const parsed = parseElf64(await read(0, HEADERS_READ));
    if (parsed === undefined) return false;
    for (const n of parsed.notes) {
      if (segmentHasPvh(await read(n.offset, Math.min(n.size, MAX_NOTE_SEGMENT)), parsed.le)) return true;
    }
    return false;
  } finally {
    await fh.close();
  }
}

const VIRTIO_MMIO = 'virtio_mmio';

/** True when one of the lines (or the part before ':' for modules.dep) names the virtio_mmio module. */
function listsVirtioMmio(text: string, depFormat: boolean): boolean {
  for (const raw of text.split('\n')) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (depFormat) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      line = line.slice(0, colon).trim();
    }
    if (moduleName(line) === VIRTIO_MMIO) return true;
  }
  return false;
}

/**
 * virtio-mmio support from modules.builtin and modules.dep texts (either may
 * be undefined): 'builtin' if modules.builtin lists virtio_mmio.ko, 'module'
 * if modules.dep does, 'absent' if both texts are known and neither lists it,
 * else 'unknown'.
 */
export function virtioMmioSupport(
  builtinText: string | undefined,
  depText: string | undefined,
): KernelTraits['virtioMmio'] {
  if (builtinText !== undefined && listsVirtioMmio(builtinText, false)) return 'builtin';
  if (depText !== undefined && listsVirtioMmio(depText, true)) return 'module';
  if (builtinText !== undefined && depText !== undefined) return 'absent';
  return 'unknown';
}

/**
 * Undefined when `vmm` can boot the kernel, else a precondition AppError whose
 * hint names the fix. firecracker needs an ELF vmlinux and built-in
 * virtio-mmio (a module only with an initrd to load it); qemu boots any
 * bzImage, and an ELF only with a PVH note. virtio-mmio 'absent' is refused
 * for both; 'unknown' is allowed.
 */
export function checkCompat(
  kernelName: string,
  traits: KernelTraits,
  hasInitrd: boolean,
  vmm: 'qemu' | 'firecracker',
): AppError | undefined {
  const k = JSON.stringify(kernelName);
  if (vmm === 'firecracker' && traits.format !== 'elf') {
    return precondition(
      `firecracker cannot boot kernel ${k}: it is a bzImage`,
      'use vmm = "qemu" or a vmlinux (ELF) kernel',
    );
  }
  if (vmm === 'qemu' && traits.format === 'elf' && !traits.pvhNote) {
    return precondition(
      `qemu cannot boot kernel ${k}: it is an uncompressed ELF without a PVH entry note`,
      'use the bzImage of this kernel or one built with CONFIG_PVH',
    );
  }
  if (traits.virtioMmio === 'absent') {
    return precondition(
      `${vmm} cannot boot kernel ${k}: it has no virtio-mmio driver`,
      `kernel ${k} lacks virtio-mmio drivers; use a kernel built with CONFIG_VIRTIO_MMIO=y`,
    );
  }
  if (vmm === 'firecracker' && traits.virtioMmio === 'module' && !hasInitrd) {
    return precondition(
      `firecracker cannot boot kernel ${k}: virtio-mmio is a module and there is no initrd to load it`,
      `use a kernel built with CONFIG_VIRTIO_MMIO=y, or give kernel ${k} an initrd that loads virtio_mmio`,
    );
  }
  return undefined;
}
