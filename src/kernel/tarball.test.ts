import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  appError,
  failingInput,
  sandbox as tempSandbox,
  sha256Hex as sha256,
  stallingInput,
  streamOf,
  tarBuffer,
  tarZst,
  type Sandbox,
  type TarSpec,
} from '../../test/helpers/tar-zst.js';
import type { AppError } from '../errors.js';
import { openUrl } from '../net/download.js';
import { extractKernelTarball } from './tarball.js';

/** An ELF64 header's first bytes: enough for kernelFormat() to say 'elf'. */
const ELF = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(5000, 0xaa)]);
const BZIMAGE = (() => {
  const b = Buffer.alloc(8192, 0x11);
  b.write('HdrS', 0x202, 'latin1');
  return b;
})();
const INITRD = Buffer.from('initrd contents');
const MODULE = Buffer.from('module bytes');

/** tmp/dest (the extraction target) inside tmp/, so escapes into tmp/ are observable. */
const sandbox = (t: TestContext): Sandbox => tempSandbox(t, 'banger-ktar-');

const URL_LABEL = 'https://example.com/k.tar.zst';

const validEntries: TarSpec[] = [
  { name: './', type: 'directory' },
  { name: './vmlinux', body: ELF },
  { name: './initrd.img', body: INITRD },
  { name: './modules/', type: 'directory' },
  { name: './modules/a/', type: 'directory' },
  { name: './modules/a/b.ko', body: MODULE },
  { name: './modules/build', type: 'symlink', linkname: 'a' },
  { name: 'modules/modules.dep', body: 'a/b.ko:\n' },
  { name: 'modules/deep/x/y.ko', body: MODULE },
  { name: 'modules/deep/up', type: 'symlink', linkname: '../a/b.ko' },
];

test('extracts vmlinux, initrd and modules and reports them', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst(validEntries);
  const res = await extractKernelTarball(streamOf(archive), dest, sha256(archive), URL_LABEL);
  assert.deepEqual(res, {
    kernelFile: 'vmlinux',
    hasInitrd: true,
    moduleFiles: 3,
    sha256: sha256(archive),
    bytes: archive.length,
  });
  assert.deepEqual(readFileSync(join(dest, 'vmlinux')), ELF);
  assert.deepEqual(readFileSync(join(dest, 'initrd.img')), INITRD);
  assert.deepEqual(readFileSync(join(dest, 'modules/a/b.ko')), MODULE);
  assert.deepEqual(readFileSync(join(dest, 'modules/deep/x/y.ko')), MODULE);
  assert.equal(readlinkSync(join(dest, 'modules/build')), 'a');
  assert.equal(readlinkSync(join(dest, 'modules/deep/up')), '../a/b.ko');
  assert.deepEqual(readdirSync(dest).sort(), ['initrd.img', 'modules', 'vmlinux']);
});

test('extracts a bzImage without initrd or modules; the pin may be uppercase', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst([{ name: 'bzImage', body: BZIMAGE }]);
  const res = await extractKernelTarball(streamOf(archive), dest, sha256(archive).toUpperCase(), URL_LABEL);
  assert.deepEqual(res, {
    kernelFile: 'bzImage',
    hasInitrd: false,
    moduleFiles: 0,
    sha256: sha256(archive),
    bytes: archive.length,
  });
  assert.deepEqual(readFileSync(join(dest, 'bzImage')), BZIMAGE);
});

test('a sha256 mismatch is refused with the catalog hint', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst(validEntries);
  const wrong = '0'.repeat(64);
  await assert.rejects(extractKernelTarball(streamOf(archive), dest, wrong, URL_LABEL), (e: unknown) => {
    appError(
      'bad_request',
      new RegExp(`^sha256 mismatch for ${URL_LABEL}: expected ${wrong}, got ${sha256(archive)}$`),
    )(e);
    assert.equal((e as AppError).hint, 'the file changed or the catalog pin is wrong');
    return true;
  });
});

test('a truncated compressed stream is reported as truncated or corrupt', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst(validEntries);
  const half = archive.subarray(0, Math.floor(archive.length / 2));
  await assert.rejects(
    extractKernelTarball(streamOf(half), dest, sha256(archive), URL_LABEL),
    appError('operation_failed', /is truncated or corrupt/),
  );
});

test('bytes that are not zstd are reported as corrupt', async (t) => {
  const { dest } = sandbox(t);
  const plainTar = await tarBuffer(validEntries);
  await assert.rejects(
    extractKernelTarball(streamOf(plainTar), dest, sha256(plainTar), URL_LABEL),
    appError('operation_failed', /truncated or corrupt/),
  );
});

test('an input stream error is passed on', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst(validEntries);
  await assert.rejects(
    extractKernelTarball(failingInput(archive), dest, sha256(archive), URL_LABEL),
    appError('operation_failed', /^download truncated/),
  );
});

test('an aborted signal rejects as cancelled', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst(validEntries);
  // Sends the first bytes, then stalls like a slow server until the abort.
  const stalled = stallingInput(archive);
  await assert.rejects(
    extractKernelTarball(stalled.input, dest, sha256(archive), URL_LABEL, stalled.signal),
    appError('cancelled', /cancelled/),
  );
  assert.ok(stalled.destroyed(), 'input destroyed');
});

const rejectCases: { name: string; entries: TarSpec[]; re: RegExp }[] = [
  {
    name: "'../evil'",
    entries: [
      { name: 'vmlinux', body: ELF },
      { name: '../evil', body: 'x' },
    ],
    re: /unsafe entry in kernel tarball: "\.\.\/evil" \('\.\.' component\)/,
  },
  { name: "'modules/../../evil'", entries: [{ name: 'modules/../../evil', body: 'x' }], re: /'\.\.' component/ },
  {
    name: "'/abs'",
    entries: [
      { name: '/abs', body: 'x' },
      { name: 'vmlinux', body: ELF },
    ],
    re: /"\/abs" \(absolute path\)/,
  },
  { name: 'control character', entries: [{ name: 'modules/a\nb', body: 'x' }], re: /control character/ },
  {
    name: 'symlink escaping modules/',
    entries: [{ name: 'modules/x', type: 'symlink', linkname: '../../etc' }],
    re: /"modules\/x" \(symlink target "\.\.\/\.\.\/etc" leaves modules\/\)/,
  },
  {
    name: 'symlink to the archive root',
    entries: [{ name: 'modules/x', type: 'symlink', linkname: '..' }],
    re: /leaves modules\//,
  },
  {
    name: 'absolute symlink',
    entries: [{ name: 'modules/build', type: 'symlink', linkname: '/usr/src/linux' }],
    re: /absolute symlink target/,
  },
  {
    name: "symlink with '..' after a name",
    entries: [{ name: 'modules/l', type: 'symlink', linkname: 'a/../b' }],
    re: /has '\.\.' after a name/,
  },
  {
    name: 'top-level symlink',
    entries: [
      { name: 'vmlinux', body: ELF },
      { name: 'link', type: 'symlink', linkname: 'vmlinux' },
    ],
    re: /unexpected entry in kernel tarball: "link"/,
  },
  {
    name: 'vmlinux as a symlink',
    entries: [{ name: 'vmlinux', type: 'symlink', linkname: 'modules/x' }],
    re: /vmlinux must be a regular file/,
  },
  {
    name: 'modules as a symlink',
    entries: [{ name: 'modules', type: 'symlink', linkname: '/lib/modules' }],
    re: /modules must be a directory/,
  },
  {
    name: 'writing through a symlink',
    entries: [
      { name: 'modules/a', type: 'directory' },
      { name: 'modules/l', type: 'symlink', linkname: 'a' },
      { name: 'modules/l/x.ko', body: 'x' },
    ],
    re: /path goes through a symlink/,
  },
  {
    name: 'replacing a symlink by a file',
    entries: [
      { name: 'modules/l', type: 'symlink', linkname: 'a' },
      { name: 'modules/l', body: 'x' },
    ],
    re: /duplicate entry/,
  },
  {
    name: 'a file below a file',
    entries: [
      { name: 'modules/f', body: 'x' },
      { name: 'modules/f/g', body: 'y' },
    ],
    re: /parent is not a directory/,
  },
  {
    name: 'character device',
    entries: [
      { name: 'vmlinux', body: ELF },
      { name: 'modules/null', type: 'character-device' },
    ],
    re: /"modules\/null" \(character-device\)/,
  },
  { name: 'block device', entries: [{ name: 'modules/sda', type: 'block-device' }], re: /\(block-device\)/ },
  { name: 'fifo', entries: [{ name: 'modules/p', type: 'fifo' }], re: /\(fifo\)/ },
  {
    name: 'hardlink',
    entries: [
      { name: 'vmlinux', body: ELF },
      { name: 'modules/v', type: 'link', linkname: 'vmlinux' },
    ],
    re: /"modules\/v" \(hardlink\)/,
  },
  {
    name: 'unexpected top-level file',
    entries: [
      { name: 'vmlinux', body: ELF },
      { name: 'README', body: 'hi' },
    ],
    re: /^unexpected entry in kernel tarball: "README"$/,
  },
  {
    name: 'kernel in a subdirectory',
    entries: [{ name: 'boot/vmlinux', body: ELF }],
    re: /^unexpected entry in kernel tarball: "boot\/vmlinux"$/,
  },
  {
    name: 'both vmlinux and bzImage',
    entries: [
      { name: 'vmlinux', body: ELF },
      { name: 'bzImage', body: BZIMAGE },
    ],
    re: /both vmlinux and bzImage/,
  },
  {
    name: 'vmlinux twice',
    entries: [
      { name: 'vmlinux', body: ELF },
      { name: './vmlinux', body: ELF },
    ],
    re: /duplicate entry/,
  },
];

for (const c of rejectCases) {
  test(`refuses ${c.name}`, async (t) => {
    const { base, dest } = sandbox(t);
    const archive = await tarZst(c.entries);
    await assert.rejects(
      extractKernelTarball(streamOf(archive), dest, sha256(archive), URL_LABEL),
      appError('bad_request', c.re),
    );
    assert.deepEqual(readdirSync(base), ['dest'], 'nothing written next to dest');
    assert.equal(existsSync('/evil'), false);
  });
}

test('refuses a tarball without vmlinux or bzImage', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst([
    { name: 'initrd.img', body: INITRD },
    { name: 'modules/a.ko', body: MODULE },
  ]);
  await assert.rejects(
    extractKernelTarball(streamOf(archive), dest, sha256(archive), URL_LABEL),
    appError('bad_request', /holds no vmlinux or bzImage/),
  );
});

test('refuses a vmlinux that is not ELF', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst([{ name: 'vmlinux', body: BZIMAGE }]);
  await assert.rejects(
    extractKernelTarball(streamOf(archive), dest, sha256(archive), URL_LABEL),
    appError('bad_request', /vmlinux .* is not an ELF image \(found: bzImage\)/),
  );
});

test('refuses a bzImage that is not a bzImage', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst([{ name: 'bzImage', body: 'tiny' }]);
  await assert.rejects(
    extractKernelTarball(streamOf(archive), dest, sha256(archive), URL_LABEL),
    appError('bad_request', /bzImage .* is not a bzImage \(found: unknown\)/),
  );
});

test('the sha256 is checked before the contents are judged', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst([{ name: 'vmlinux', body: 'not elf' }]);
  await assert.rejects(
    extractKernelTarball(streamOf(archive), dest, 'f'.repeat(64), URL_LABEL),
    appError('bad_request', /sha256 mismatch/),
  );
  assert.equal(lstatSync(join(dest, 'vmlinux')).isFile(), true, 'extraction itself completed; the caller removes dest');
});

test('extracts straight from openUrl on a local server; a cut download fails', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst(validEntries);
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-length': String(archive.length) });
    if (req.url === '/cut') {
      res.write(archive.subarray(0, 200));
      setTimeout(() => res.socket?.destroy(), 30);
      return;
    }
    res.end(archive);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const ok = await openUrl(new URL(`${base}/k.tar.zst`));
  const res = await extractKernelTarball(ok.stream, dest, sha256(archive), `${base}/k.tar.zst`);
  assert.equal(res.bytes, archive.length);
  const cutDest = join(dest, '..', 'cut');
  mkdirSync(cutDest);
  const cut = await openUrl(new URL(`${base}/cut`));
  await assert.rejects(
    extractKernelTarball(cut.stream, cutDest, sha256(archive), `${base}/cut`),
    appError('operation_failed', /^download truncated: got 200 of \d+ bytes/),
  );
});
