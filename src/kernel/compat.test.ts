import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError } from '../errors.js';
import { checkCompat, hasPvhNote, hasPvhNoteInFile, virtioMmioSupport, type KernelTraits } from './compat.js';

interface Note {
  name: string;
  type: number;
  desc: Buffer;
}

const align4 = (n: number): number => (n + 3) & ~3;

function noteBytes(notes: Note[]): Buffer {
  const parts: Buffer[] = [];
  for (const n of notes) {
    const name = Buffer.from(`${n.name}\0`, 'latin1');
    const head = Buffer.alloc(12);
    head.writeUInt32LE(name.length, 0);
    head.writeUInt32LE(n.desc.length, 4);
    head.writeUInt32LE(n.type, 8);
    parts.push(
      head,
      name,
      Buffer.alloc(align4(name.length) - name.length),
      n.desc,
      Buffer.alloc(align4(n.desc.length) - n.desc.length),
    );
  }
  return Buffer.concat(parts);
}

/**
 * A minimal little-endian ELF64: header, a PT_LOAD and a PT_NOTE program
 * header, padding up to `noteOffset`, then the note segment.
 */
function elf64(notes: Note[], noteOffset = 0x100): Buffer {
  const segment = noteBytes(notes);
  const out = Buffer.alloc(noteOffset + segment.length);
  out.writeUInt32BE(0x7f454c46, 0);
  out[4] = 2; // ELFCLASS64
  out[5] = 1; // little-endian
  out[6] = 1; // EV_CURRENT
  out.writeUInt16LE(2, 0x10); // ET_EXEC
  out.writeUInt16LE(62, 0x12); // EM_X86_64
  out.writeUInt32LE(1, 0x14);
  out.writeBigUInt64LE(0x1000000n, 0x18); // e_entry
  out.writeBigUInt64LE(64n, 0x20); // e_phoff
  out.writeUInt16LE(64, 0x34); // e_ehsize
  out.writeUInt16LE(56, 0x36); // e_phentsize
  out.writeUInt16LE(2, 0x38); // e_phnum
  const load = 64;
  out.writeUInt32LE(1, load); // PT_LOAD
  out.writeBigUInt64LE(0n, load + 8);
  out.writeBigUInt64LE(BigInt(noteOffset), load + 32);
  const note = 64 + 56;
  out.writeUInt32LE(4, note); // PT_NOTE
  out.writeBigUInt64LE(BigInt(noteOffset), note + 8);
  out.writeBigUInt64LE(BigInt(segment.length), note + 32);
  segment.copy(out, noteOffset);
  return out;
}

const entry = Buffer.alloc(4);
entry.writeUInt32LE(0x1000000);
const linuxNote: Note = { name: 'Linux', type: 6, desc: Buffer.from('4.0\0') };
const gnuNote: Note = { name: 'GNU', type: 3, desc: Buffer.alloc(20, 7) };
const pvhNote: Note = { name: 'Xen', type: 18, desc: entry };

test('hasPvhNote finds a Xen type-18 note among others', () => {
  assert.equal(hasPvhNote(elf64([pvhNote])), true);
  assert.equal(hasPvhNote(elf64([linuxNote, gnuNote, pvhNote])), true);
});

test('hasPvhNote: no Xen type-18 note', () => {
  assert.equal(hasPvhNote(elf64([linuxNote, gnuNote])), false);
  assert.equal(hasPvhNote(elf64([{ name: 'Xen', type: 17, desc: entry }])), false);
  assert.equal(hasPvhNote(elf64([{ name: 'Linux', type: 18, desc: entry }])), false);
  assert.equal(hasPvhNote(elf64([])), false);
});

test('hasPvhNote: garbage and truncated input', () => {
  assert.equal(hasPvhNote(Buffer.alloc(0)), false);
  assert.equal(
    hasPvhNote(Buffer.from('definitely not an ELF file, just some text that is long enough to have a header')),
    false,
  );
  const good = elf64([pvhNote]);
  assert.equal(hasPvhNote(good.subarray(0, 100)), false, 'program headers cut off');
  assert.equal(hasPvhNote(good.subarray(0, 0x100 + 8)), false, 'note segment cut off');
  const elf32 = Buffer.from(good);
  elf32[4] = 1;
  assert.equal(hasPvhNote(elf32), false, 'ELF32 is not read');
  const hugeNote = Buffer.from(good);
  hugeNote.writeUInt32LE(0xffffffff, 0x100); // namesz
  assert.equal(hasPvhNote(hugeNote), false);
  const hugePhnum = Buffer.from(good);
  hugePhnum.writeUInt16LE(0xffff, 0x38);
  assert.equal(hasPvhNote(hugePhnum), false);
  const hugeOffset = Buffer.from(good);
  hugeOffset.writeBigUInt64LE(0xffffffffffffffffn, 64 + 56 + 8);
  assert.equal(hasPvhNote(hugeOffset), false);
});

test('hasPvhNoteInFile reads a note segment far beyond the head of the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'banger-compat-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const far = elf64([linuxNote, pvhNote], 5 << 20);
  assert.equal(hasPvhNote(far.subarray(0, 64 * 1024)), false, 'the head alone does not reach the notes');
  writeFileSync(join(dir, 'pvh'), far);
  writeFileSync(join(dir, 'plain'), elf64([linuxNote], 5 << 20));
  writeFileSync(join(dir, 'junk'), 'junk');
  assert.equal(await hasPvhNoteInFile(join(dir, 'pvh')), true);
  assert.equal(await hasPvhNoteInFile(join(dir, 'plain')), false);
  assert.equal(await hasPvhNoteInFile(join(dir, 'junk')), false);
});

const BUILTIN_WITH = 'kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_mmio.ko\n';
const BUILTIN_WITHOUT = 'kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n';
const DEP_WITH =
  'kernel/drivers/virtio/virtio_mmio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz\nkernel/drivers/block/virtio_blk.ko.xz:\n';
const DEP_WITHOUT = 'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_mmio_helper.ko\n';

const mmioCases: {
  name: string;
  builtin: string | undefined;
  dep: string | undefined;
  want: KernelTraits['virtioMmio'];
}[] = [
  { name: 'builtin', builtin: BUILTIN_WITH, dep: DEP_WITHOUT, want: 'builtin' },
  { name: 'builtin, no modules.dep', builtin: BUILTIN_WITH, dep: undefined, want: 'builtin' },
  { name: 'module', builtin: BUILTIN_WITHOUT, dep: DEP_WITH, want: 'module' },
  { name: 'module, no modules.builtin', builtin: undefined, dep: DEP_WITH, want: 'module' },
  {
    name: 'absent (a dependency named like it does not count)',
    builtin: BUILTIN_WITHOUT,
    dep: DEP_WITHOUT,
    want: 'absent',
  },
  { name: 'absent with empty texts', builtin: '', dep: '', want: 'absent' },
  { name: 'unknown without modules.builtin', builtin: undefined, dep: DEP_WITHOUT, want: 'unknown' },
  { name: 'unknown without modules.dep', builtin: BUILTIN_WITHOUT, dep: undefined, want: 'unknown' },
  { name: 'unknown without either', builtin: undefined, dep: undefined, want: 'unknown' },
];

for (const c of mmioCases) {
  test(`virtioMmioSupport: ${c.name}`, () => assert.equal(virtioMmioSupport(c.builtin, c.dep), c.want));
}

const traits = (extra: Partial<KernelTraits>): KernelTraits => ({
  format: 'elf',
  pvhNote: false,
  virtioMmio: 'builtin',
  ...extra,
});

const compatCases: {
  name: string;
  traits: KernelTraits;
  initrd: boolean;
  vmm: 'qemu' | 'firecracker';
  hint?: RegExp;
}[] = [
  { name: 'firecracker + ELF builtin', traits: traits({}), initrd: false, vmm: 'firecracker' },
  { name: 'firecracker + ELF unknown', traits: traits({ virtioMmio: 'unknown' }), initrd: false, vmm: 'firecracker' },
  {
    name: 'firecracker + ELF module with initrd',
    traits: traits({ virtioMmio: 'module' }),
    initrd: true,
    vmm: 'firecracker',
  },
  {
    name: 'firecracker + ELF module without initrd',
    traits: traits({ virtioMmio: 'module' }),
    initrd: false,
    vmm: 'firecracker',
    hint: /CONFIG_VIRTIO_MMIO=y/,
  },
  {
    name: 'firecracker + bzImage',
    traits: traits({ format: 'bzImage' }),
    initrd: true,
    vmm: 'firecracker',
    hint: /^use vmm = "qemu" or a vmlinux \(ELF\) kernel$/,
  },
  {
    name: 'firecracker + ELF absent',
    traits: traits({ virtioMmio: 'absent' }),
    initrd: true,
    vmm: 'firecracker',
    hint: /"k1" lacks virtio-mmio drivers/,
  },
  { name: 'qemu + bzImage', traits: traits({ format: 'bzImage', virtioMmio: 'module' }), initrd: false, vmm: 'qemu' },
  {
    name: 'qemu + bzImage unknown',
    traits: traits({ format: 'bzImage', virtioMmio: 'unknown' }),
    initrd: false,
    vmm: 'qemu',
  },
  { name: 'qemu + ELF with PVH', traits: traits({ pvhNote: true }), initrd: false, vmm: 'qemu' },
  {
    name: 'qemu + ELF without PVH',
    traits: traits({}),
    initrd: true,
    vmm: 'qemu',
    hint: /^use the bzImage of this kernel or one built with CONFIG_PVH$/,
  },
  {
    name: 'qemu + bzImage absent',
    traits: traits({ format: 'bzImage', virtioMmio: 'absent' }),
    initrd: true,
    vmm: 'qemu',
    hint: /"k1" lacks virtio-mmio drivers/,
  },
];

for (const c of compatCases) {
  test(`checkCompat: ${c.name} → ${c.hint ? 'refused' : 'ok'}`, () => {
    const got = checkCompat('k1', c.traits, c.initrd, c.vmm);
    if (c.hint === undefined) {
      assert.equal(got, undefined);
      return;
    }
    assert.ok(got instanceof AppError);
    assert.equal(got.code, 'precondition');
    assert.match(got.message, new RegExp(`${c.vmm} cannot boot kernel "k1"`));
    assert.match(got.hint ?? '', c.hint);
  });
}
