import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelFormat, kernelReleaseFromVmlinuz, parseAptDepends } from './apt.js';

// Captured from apt-cache on Debian bookworm.
const DEPENDS_NO_RECOMMENDS = 'linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n';
const DEPENDS_VERSIONED_IMAGE = `linux-image-6.1.0-56-cloud-amd64
  Depends: kmod
  Depends: linux-base
 |Depends: initramfs-tools
  Depends: <linux-initramfs-tool>
    dracut
    initramfs-tools
    tiny-initramfs
  Conflicts: linux-image-6.1.0-56-cloud-amd64-unsigned
  Breaks: fwupdate
  Recommends: firmware-linux-free
  Suggests: linux-doc-6.1
 |Suggests: grub-pc
  Replaces: linux-image-6.1.0-56-cloud-amd64-unsigned
`;
const DEPENDS_VIRTUAL_FIRST = `bsd-mailx
 |Depends: <default-mta>
    exim4-daemon-light
  Depends: <mail-transport-agent>
    courier-mta
  Depends: libbsd0
`;

const dependsCases: { name: string; text: string; want: string | undefined }[] = [
  {
    name: 'metapackage (--no-recommends --no-suggests)',
    text: DEPENDS_NO_RECOMMENDS,
    want: 'linux-image-6.1.0-56-cloud-amd64',
  },
  { name: 'full output', text: DEPENDS_VERSIONED_IMAGE, want: 'kmod' },
  { name: 'virtual marker stripped', text: DEPENDS_VIRTUAL_FIRST, want: 'default-mta' },
  { name: 'PreDepends is not Depends', text: 'p\n  PreDepends: dpkg\n  Depends: libc6:any\n', want: 'libc6' },
  { name: 'no Depends line', text: 'linux-image-cloud-amd64\n  Recommends: foo\n', want: undefined },
  { name: 'empty', text: '', want: undefined },
  {
    name: 'CRLF',
    text: 'p\r\n  Depends: linux-image-6.1.0-56-cloud-amd64\r\n',
    want: 'linux-image-6.1.0-56-cloud-amd64',
  },
];
for (const c of dependsCases) {
  test(`parseAptDepends: ${c.name}`, () => assert.equal(parseAptDepends(c.text), c.want));
}

const releaseCases: { name: string; input: string; want: string | undefined }[] = [
  { name: 'relative path', input: 'boot/vmlinuz-6.1.0-56-cloud-amd64', want: '6.1.0-56-cloud-amd64' },
  { name: 'absolute path', input: '/boot/vmlinuz-6.1.0-56-cloud-amd64', want: '6.1.0-56-cloud-amd64' },
  { name: 'bare file name', input: 'vmlinuz-6.12.9+bpo-cloud-amd64', want: '6.12.9+bpo-cloud-amd64' },
  {
    name: 'dpkg -L listing',
    input:
      '/.\n/boot\n/boot/System.map-6.1.0-56-cloud-amd64\n/boot/config-6.1.0-56-cloud-amd64\n/boot/vmlinuz-6.1.0-56-cloud-amd64\n/lib/modules/6.1.0-56-cloud-amd64\n',
    want: '6.1.0-56-cloud-amd64',
  },
  {
    name: 'dpkg-deb -c listing',
    input:
      'drwxr-xr-x root/root         0 2025-01-01 00:00 ./boot/\n-rw-r--r-- root/root   7957184 2025-01-01 00:00 ./boot/vmlinuz-6.1.0-56-cloud-amd64\n',
    want: '6.1.0-56-cloud-amd64',
  },
  { name: 'no vmlinuz', input: 'boot/config-6.1.0-56-cloud-amd64', want: undefined },
  { name: 'vmlinuz without release', input: 'boot/vmlinuz', want: undefined },
  { name: 'non-numeric suffix', input: 'vmlinuz-old', want: undefined },
  { name: 'vmlinuz inside another name', input: 'boot/notvmlinuz-6.1.0', want: undefined },
];
for (const c of releaseCases) {
  test(`kernelReleaseFromVmlinuz: ${c.name}`, () => assert.equal(kernelReleaseFromVmlinuz(c.input), c.want));
}

function bzImageHead(): Buffer {
  const b = Buffer.alloc(1024);
  b[0x1fe] = 0x55;
  b[0x1ff] = 0xaa;
  b.write('HdrS', 0x202, 'latin1');
  return b;
}

const formatCases: { name: string; head: Buffer; want: 'bzImage' | 'elf' | 'unknown' }[] = [
  { name: 'bzImage', head: bzImageHead(), want: 'bzImage' },
  { name: 'bzImage header exactly long enough', head: bzImageHead().subarray(0, 0x206), want: 'bzImage' },
  { name: 'bzImage header cut short', head: bzImageHead().subarray(0, 0x204), want: 'unknown' },
  { name: 'ELF vmlinux', head: Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), want: 'elf' },
  { name: 'ELF magic only', head: Buffer.from([0x7f, 0x45, 0x4c, 0x46]), want: 'elf' },
  { name: 'gzip', head: Buffer.from([0x1f, 0x8b, 8, 0]), want: 'unknown' },
  { name: 'empty', head: Buffer.alloc(0), want: 'unknown' },
  { name: 'zeros', head: Buffer.alloc(1024), want: 'unknown' },
];
for (const c of formatCases) {
  test(`kernelFormat: ${c.name}`, () => assert.equal(kernelFormat(c.head), c.want));
}
