import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { decompress } from 'zstd-napi';
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
import { parseBundleManifest, readBundle, writeBundle, type BundleManifest } from './bundle.js';

const MIB = 1024 * 1024;
const LABEL = 'https://example.com/img.tar.zst';

function manifestFor(rootfsBytes: number, extra: Partial<BundleManifest> = {}): BundleManifest {
  return {
    format: 1,
    name: 'devbox',
    distro: 'debian-bookworm',
    arch: 'x86_64',
    kernel_ref: 'debian-6.1',
    rootfs_bytes: rootfsBytes,
    assets_version: 3,
    created_at: '2024-05-01T12:00:00.000Z',
    ...extra,
  };
}

/** A few MiB with data, an aligned zero region, a misaligned zero run and an odd tail, so holes and edges are exercised. */
function fakeRootfs(): Buffer {
  const b = Buffer.alloc(3 * MIB + 1234);
  randomBytes(MIB).copy(b, 0);
  b.fill(0x5a, 2 * MIB + 100, 2 * MIB + 9000);
  randomBytes(1000).copy(b, b.length - 1000);
  return b;
}

async function tarNames(archive: Buffer): Promise<string[]> {
  const ex = extract();
  const names: string[] = [];
  ex.end(decompress(archive));
  for await (const entry of ex) {
    names.push(entry.header.name);
    for await (const _chunk of entry) {
      // discard
    }
  }
  return names;
}

/** base/dest (the extraction target) inside base/, so escapes into base/ are observable. */
const sandbox = (t: TestContext): Sandbox => tempSandbox(t, 'banger-bundle-');

// ---------------------------------------------------------------------------
// Round trip

test('writeBundle → readBundle round-trips the rootfs byte for byte and the manifest', async (t) => {
  const { base, dest } = sandbox(t);
  const rootfs = fakeRootfs();
  const rootfsPath = join(base, 'rootfs.ext4');
  writeFileSync(rootfsPath, rootfs);
  const manifest = manifestFor(rootfs.length);
  const out = join(base, 'img.tar.zst');

  const written = await writeBundle(rootfsPath, manifest, out);
  const archive = readFileSync(out);
  assert.deepEqual(written, { sha256: sha256(archive), bytes: archive.length });
  assert.ok(!existsSync(`${out}.partial`), 'partial file renamed away');
  assert.ok(archive.length < rootfs.length, 'compressed');
  assert.deepEqual(await tarNames(archive), ['manifest.json', 'rootfs.ext4']);

  // Read through openUrl(file://) as image pull does; an uppercase pin is accepted.
  const { stream } = await openUrl(new URL(`file://${out}`));
  const res = await readBundle(stream, dest, written.sha256.toUpperCase(), LABEL);
  assert.deepEqual(res, { manifest, rootfs: join(dest, 'rootfs.ext4'), bytes: archive.length });
  assert.ok(readFileSync(res.rootfs).equals(rootfs), 'rootfs identical');
  assert.deepEqual(JSON.parse(readFileSync(join(dest, 'manifest.json'), 'utf8')), manifest);
  assert.deepEqual(readdirSync(dest).sort(), ['manifest.json', 'rootfs.ext4']);
});

test('zero blocks of the rootfs stay holes when read back, and the same inputs give the same bundle', async (t) => {
  const { base, dest } = sandbox(t);
  const rootfsPath = join(base, 'rootfs.ext4');
  // 16 MiB sparse file with a little data at the start and near the end.
  const size = 16 * MIB;
  const tail = Buffer.from('tail data');
  writeFileSync(rootfsPath, Buffer.from('superblock'));
  truncateSync(rootfsPath, size);
  const fd = openSync(rootfsPath, 'r+');
  writeSync(fd, tail, 0, tail.length, size - 5000);
  closeSync(fd);
  const withTail = Buffer.alloc(size);
  withTail.write('superblock');
  tail.copy(withTail, size - 5000);
  const manifest = manifestFor(size);

  const a = await writeBundle(rootfsPath, manifest, join(base, 'a.tar.zst'));
  const b = await writeBundle(rootfsPath, manifest, join(base, 'b.tar.zst'));
  assert.equal(a.sha256, b.sha256, 'deterministic');
  assert.ok(a.bytes < 64 * 1024, `zeros compress away (${a.bytes} bytes)`);

  const res = await readBundle(streamOf(readFileSync(join(base, 'a.tar.zst'))), dest, a.sha256, LABEL);
  const st = statSync(res.rootfs);
  assert.equal(st.size, size);
  assert.ok(readFileSync(res.rootfs).equals(withTail), 'content identical');
  assert.ok(st.blocks * 512 < MIB, `extracted rootfs is sparse (${st.blocks * 512} bytes allocated)`);
});

test('readBundle accepts either entry order, a leading ./ and a ./ root entry', async (t) => {
  const { dest } = sandbox(t);
  const rootfs = Buffer.from('tiny rootfs');
  const m = manifestFor(rootfs.length);
  const archive = await tarZst([
    { name: './', type: 'directory' },
    { name: './rootfs.ext4', body: rootfs },
    { name: './manifest.json', body: JSON.stringify(m) },
  ]);
  const res = await readBundle(streamOf(archive), dest, sha256(archive), LABEL);
  assert.deepEqual(res.manifest, m);
  assert.deepEqual(readFileSync(res.rootfs), rootfs);
});

// ---------------------------------------------------------------------------
// Integrity

const ROOTFS = Buffer.concat([Buffer.from('rootfs'), Buffer.alloc(10000), Buffer.from('end')]);
const MANIFEST = JSON.stringify(manifestFor(ROOTFS.length));
const validEntries: TarSpec[] = [
  { name: 'manifest.json', body: MANIFEST },
  { name: 'rootfs.ext4', body: ROOTFS },
];

test('a sha256 mismatch is refused naming both digests', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst(validEntries);
  const wrong = '0'.repeat(64);
  await assert.rejects(readBundle(streamOf(archive), dest, wrong, LABEL), (e: unknown) => {
    appError('bad_request', new RegExp(`^sha256 mismatch for ${LABEL}: expected ${wrong}, got ${sha256(archive)}$`))(e);
    assert.ok((e as AppError).hint !== undefined);
    return true;
  });
});

test('a pin that is not a sha256 is refused before reading', async (t) => {
  const { dest } = sandbox(t);
  let destroyed = false;
  const input = new Readable({
    read() {
      // never produces
    },
    destroy(err, cb) {
      destroyed = true;
      cb(err);
    },
  });
  await assert.rejects(readBundle(input, dest, 'abc', LABEL), appError('bad_request', /invalid sha256/));
  assert.ok(destroyed, 'input destroyed');
});

test('a truncated bundle (cut in half) is reported as truncated or corrupt', async (t) => {
  const { base, dest } = sandbox(t);
  const rootfs = fakeRootfs();
  const rootfsPath = join(base, 'rootfs.ext4');
  writeFileSync(rootfsPath, rootfs);
  const out = join(base, 'img.tar.zst');
  const { sha256: pin } = await writeBundle(rootfsPath, manifestFor(rootfs.length), out);
  const archive = readFileSync(out);
  const half = archive.subarray(0, Math.floor(archive.length / 2));
  await assert.rejects(
    readBundle(streamOf(half), dest, pin, LABEL),
    appError('operation_failed', new RegExp(`^bundle ${LABEL} is truncated or corrupt: `)),
  );
});

test('bytes that are not zstd are reported as corrupt', async (t) => {
  const { dest } = sandbox(t);
  const plainTar = await tarBuffer(validEntries);
  await assert.rejects(
    readBundle(streamOf(plainTar), dest, sha256(plainTar), LABEL),
    appError('operation_failed', /is truncated or corrupt/),
  );
});

test('an input stream error is passed on', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst(validEntries);
  await assert.rejects(
    readBundle(failingInput(archive), dest, sha256(archive), LABEL),
    appError('operation_failed', /^download truncated/),
  );
});

test('readBundle: an abort while the input stalls rejects as cancelled and destroys the input', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst(validEntries);
  const stalled = stallingInput(archive);
  await assert.rejects(
    readBundle(stalled.input, dest, sha256(archive), LABEL, stalled.signal),
    appError('cancelled', /cancelled/),
  );
  assert.ok(stalled.destroyed(), 'input destroyed');
});

test('an already aborted signal rejects both directions as cancelled', async (t) => {
  const { base, dest } = sandbox(t);
  const ac = new AbortController();
  ac.abort();
  const archive = await tarZst(validEntries);
  await assert.rejects(
    readBundle(streamOf(archive), dest, sha256(archive), LABEL, ac.signal),
    appError('cancelled', /cancelled/),
  );
  writeFileSync(join(base, 'rootfs.ext4'), ROOTFS);
  const out = join(base, 'x.tar.zst');
  await assert.rejects(
    writeBundle(join(base, 'rootfs.ext4'), manifestFor(ROOTFS.length), out, ac.signal),
    appError('cancelled', /cancelled/),
  );
  assert.ok(!existsSync(out) && !existsSync(`${out}.partial`));
});

// ---------------------------------------------------------------------------
// Layout and safety

const m = (over: Record<string, unknown>): string => JSON.stringify({ ...manifestFor(ROOTFS.length), ...over });

const rejectCases: { name: string; entries: TarSpec[]; code?: AppError['code']; re: RegExp }[] = [
  {
    name: 'an extra file',
    entries: [...validEntries, { name: 'extra.txt', body: 'hi' }],
    re: new RegExp(`^unexpected entry in bundle ${LABEL}: "extra.txt"$`),
  },
  {
    name: 'a file in a subdirectory',
    entries: [{ name: 'img/rootfs.ext4', body: ROOTFS }, validEntries[0]!],
    re: /unexpected entry .*"img\/rootfs.ext4"/,
  },
  {
    name: 'a directory',
    entries: [{ name: 'dir/', type: 'directory' }, ...validEntries],
    re: /unexpected entry .*"dir\/" \(directory\)/,
  },
  {
    name: 'rootfs.ext4 as a symlink',
    entries: [validEntries[0]!, { name: 'rootfs.ext4', type: 'symlink', linkname: '/dev/sda' }],
    re: /unsafe entry .*"rootfs.ext4" \(symlink to "\/dev\/sda"\)/,
  },
  {
    name: 'a symlink',
    entries: [...validEntries, { name: 'link', type: 'symlink', linkname: 'rootfs.ext4' }],
    re: /"link" \(symlink/,
  },
  {
    name: 'a hardlink',
    entries: [validEntries[0]!, { name: 'rootfs.ext4', type: 'link', linkname: 'manifest.json' }],
    re: /"rootfs.ext4" \(hardlink\)/,
  },
  {
    name: 'a character device',
    entries: [{ name: 'rootfs.ext4', type: 'character-device' }],
    re: /"rootfs.ext4" \(character-device\)/,
  },
  { name: 'a fifo', entries: [{ name: 'manifest.json', type: 'fifo' }], re: /"manifest.json" \(fifo\)/ },
  {
    name: "'../x'",
    entries: [{ name: '../x', body: 'evil' }, ...validEntries],
    re: /unsafe entry .*"\.\.\/x" \('\.\.' component\)/,
  },
  {
    name: "'../rootfs.ext4'",
    entries: [validEntries[0]!, { name: '../rootfs.ext4', body: ROOTFS }],
    re: /'\.\.' component/,
  },
  {
    name: 'an absolute path',
    entries: [{ name: '/rootfs.ext4', body: ROOTFS }, validEntries[0]!],
    re: /"\/rootfs.ext4" \(absolute path\)/,
  },
  {
    name: 'a duplicate rootfs',
    entries: [...validEntries, { name: './rootfs.ext4', body: ROOTFS }],
    re: /"\.\/rootfs.ext4" \(duplicate entry\)/,
  },
  {
    name: 'a duplicate manifest',
    entries: [validEntries[0]!, ...validEntries],
    re: /"manifest.json" \(duplicate entry\)/,
  },
  {
    name: 'a missing manifest',
    entries: [validEntries[1]!],
    re: new RegExp(`^bundle ${LABEL} holds no manifest.json$`),
  },
  { name: 'a missing rootfs', entries: [validEntries[0]!], re: new RegExp(`^bundle ${LABEL} holds no rootfs.ext4$`) },
  { name: 'an empty archive', entries: [], re: /holds no manifest.json/ },
  {
    name: 'bad manifest JSON',
    entries: [{ name: 'manifest.json', body: '{"format": 1,' }, validEntries[1]!],
    re: /^bundle manifest: not valid JSON/,
  },
  {
    name: 'an unknown manifest key',
    entries: [{ name: 'manifest.json', body: m({ extra: true }) }, validEntries[1]!],
    re: /^bundle manifest: unknown key "extra"$/,
  },
  {
    name: 'a manifest for another arch',
    entries: [{ name: 'manifest.json', body: m({ arch: 'aarch64' }) }, validEntries[1]!],
    re: /^bundle manifest: arch: /,
  },
  {
    name: 'rootfs_bytes not matching the rootfs',
    entries: [{ name: 'manifest.json', body: m({ rootfs_bytes: 4096 }) }, validEntries[1]!],
    re: /says rootfs_bytes 4096, but rootfs.ext4 has 10009 bytes/,
  },
  {
    name: 'an oversized manifest',
    entries: [{ name: 'manifest.json', body: Buffer.alloc(1_100_000, 0x20) }, validEntries[1]!],
    re: /manifest.json in bundle .* is too large: 1100000 bytes/,
  },
];

for (const c of rejectCases) {
  test(`readBundle refuses ${c.name}`, async (t) => {
    const { base, dest } = sandbox(t);
    const archive = await tarZst(c.entries);
    await assert.rejects(
      readBundle(streamOf(archive), dest, sha256(archive), LABEL),
      appError(c.code ?? 'bad_request', c.re),
    );
    // Nothing escaped dest.
    assert.deepEqual(readdirSync(base).sort(), ['dest']);
  });
}

test('readBundle refuses an unsafe entry before writing anything for it', async (t) => {
  const { dest } = sandbox(t);
  const archive = await tarZst([{ name: 'extra', body: 'x' }, ...validEntries]);
  await assert.rejects(
    readBundle(streamOf(archive), dest, sha256(archive), LABEL),
    appError('bad_request', /unexpected entry/),
  );
  assert.deepEqual(readdirSync(dest), []);
});

// ---------------------------------------------------------------------------
// parseBundleManifest

const parseCases: { name: string; text: string; re?: RegExp }[] = [
  { name: 'a valid manifest', text: m({}) },
  { name: 'a timestamp with an offset', text: m({ created_at: '2024-05-01T12:00:00+02:00' }) },
  { name: 'not JSON', text: 'nope', re: /^bundle manifest: not valid JSON/ },
  { name: 'an array', text: '[]', re: /^bundle manifest: must be a JSON object$/ },
  { name: 'unknown keys', text: m({ foo: 1, bar: 2 }), re: /^bundle manifest: unknown keys "foo", "bar"$/ },
  { name: 'a newer format', text: m({ format: 2, new_key: 1 }), re: /^bundle manifest: unsupported format 2/ },
  {
    name: 'a missing key',
    text: JSON.stringify({ ...manifestFor(1), kernel_ref: undefined }),
    re: /^bundle manifest: kernel_ref is required$/,
  },
  { name: 'an empty name', text: m({ name: '' }), re: /^bundle manifest: name: must be a non-empty string$/ },
  {
    name: 'a control character',
    text: m({ distro: 'a\nb' }),
    re: /^bundle manifest: distro: must not contain control characters$/,
  },
  { name: 'a fractional size', text: m({ rootfs_bytes: 1.5 }), re: /^bundle manifest: rootfs_bytes: / },
  { name: 'a negative assets_version', text: m({ assets_version: -1 }), re: /^bundle manifest: assets_version: / },
  { name: 'a bad timestamp', text: m({ created_at: 'yesterday' }), re: /^bundle manifest: created_at: / },
  {
    name: 'an image config and has_sshd/has_systemd',
    text: m({
      config: { env: ['PATH=/bin'], working_dir: '/w', user: '1000', entrypoint: ['/e'], cmd: ['c'] },
      has_sshd: false,
      has_systemd: true,
    }),
  },
  {
    name: 'a config with a NUL',
    text: m({ config: { user: 'a\u0000' } }),
    re: /^bundle manifest: image config User contains a NUL byte$/,
  },
  {
    name: 'a config with an unknown key',
    text: m({ config: { Env: [] } }),
    re: /^bundle manifest: config has an unknown key "Env"$/,
  },
  { name: 'a config that is null', text: m({ config: null }), re: /^bundle manifest: config is not an object$/ },
  { name: 'a has_sshd that is not a boolean', text: m({ has_sshd: 'yes' }), re: /^bundle manifest: has_sshd: / },
];

for (const c of parseCases) {
  test(`parseBundleManifest: ${c.name}`, () => {
    if (c.re === undefined) {
      assert.deepEqual(parseBundleManifest(c.text), JSON.parse(c.text));
      return;
    }
    assert.throws(() => parseBundleManifest(c.text), appError('bad_request', c.re));
  });
}

// ---------------------------------------------------------------------------
// writeBundle failures

const writeFailCases: {
  name: string;
  setup: (base: string) => { rootfs: string; manifest: BundleManifest; out: string };
  code: AppError['code'];
  re: RegExp;
}[] = [
  {
    name: 'a missing rootfs',
    setup: (base) => ({ rootfs: join(base, 'nope.ext4'), manifest: manifestFor(1), out: join(base, 'x.tar.zst') }),
    code: 'operation_failed',
    re: /^cannot open rootfs .*nope.ext4: no such file$/,
  },
  {
    name: 'a rootfs that is a directory',
    setup: (base) => {
      mkdirSync(join(base, 'dir'));
      return { rootfs: join(base, 'dir'), manifest: manifestFor(1), out: join(base, 'x.tar.zst') };
    },
    code: 'bad_request',
    re: /is not a regular file/,
  },
  {
    name: 'rootfs_bytes not matching the file',
    setup: (base) => {
      writeFileSync(join(base, 'r.ext4'), ROOTFS);
      return { rootfs: join(base, 'r.ext4'), manifest: manifestFor(4096), out: join(base, 'x.tar.zst') };
    },
    code: 'bad_request',
    re: /says rootfs_bytes 4096, but .* has 10009 bytes/,
  },
  {
    name: 'an invalid manifest',
    setup: (base) => {
      writeFileSync(join(base, 'r.ext4'), ROOTFS);
      return {
        rootfs: join(base, 'r.ext4'),
        manifest: { ...manifestFor(ROOTFS.length), extra: 1 } as BundleManifest,
        out: join(base, 'x.tar.zst'),
      };
    },
    code: 'bad_request',
    re: /^bundle manifest: unknown key "extra"$/,
  },
  {
    name: 'an output directory that does not exist',
    setup: (base) => {
      writeFileSync(join(base, 'r.ext4'), ROOTFS);
      return {
        rootfs: join(base, 'r.ext4'),
        manifest: manifestFor(ROOTFS.length),
        out: join(base, 'missing', 'x.tar.zst'),
      };
    },
    code: 'operation_failed',
    re: /^cannot write bundle .*x.tar.zst: .*ENOENT/,
  },
];

for (const c of writeFailCases) {
  test(`writeBundle fails cleanly on ${c.name}`, async (t) => {
    const { base } = sandbox(t);
    const { rootfs, manifest, out } = c.setup(base);
    const before = readdirSync(base).sort();
    await assert.rejects(writeBundle(rootfs, manifest, out, undefined), appError(c.code, c.re));
    assert.deepEqual(readdirSync(base).sort(), before, 'no bundle and no .partial left behind');
  });
}

test('writeBundle removes the .partial file when aborted mid-stream', async (t) => {
  const { base } = sandbox(t);
  const rootfsPath = join(base, 'rootfs.ext4');
  // 2 GiB sparse: takes long enough to stream that the abort lands mid-way, costs no disk.
  writeFileSync(rootfsPath, '');
  truncateSync(rootfsPath, 2048 * MIB);
  const out = join(base, 'img.tar.zst');
  const ac = new AbortController();
  let sawPartial = false;
  const poll = setInterval(() => {
    if (existsSync(`${out}.partial`)) {
      sawPartial = true;
      clearInterval(poll);
      ac.abort();
    }
  }, 1);
  t.after(() => clearInterval(poll));
  await assert.rejects(
    writeBundle(rootfsPath, manifestFor(2048 * MIB), out, ac.signal),
    appError('cancelled', /cancelled/),
  );
  assert.ok(sawPartial, 'the partial file existed while writing');
  assert.ok(!existsSync(`${out}.partial`), 'partial removed');
  assert.ok(!existsSync(out), 'no bundle');
});

test('writeBundle replaces a stale .partial file and an existing bundle', async (t) => {
  const { base, dest } = sandbox(t);
  const rootfsPath = join(base, 'rootfs.ext4');
  writeFileSync(rootfsPath, ROOTFS);
  const out = join(base, 'img.tar.zst');
  writeFileSync(`${out}.partial`, 'left over from a crash');
  writeFileSync(out, 'old bundle');
  const res = await writeBundle(rootfsPath, manifestFor(ROOTFS.length), out);
  assert.ok(!existsSync(`${out}.partial`));
  const back = await readBundle(streamOf(readFileSync(out)), dest, res.sha256, LABEL);
  assert.deepEqual(readFileSync(back.rootfs), ROOTFS);
});

test('writeBundle reports a rootfs that shrinks while it is read, and removes the .partial file', async (t) => {
  // sysfs files claim 4096 bytes but hold fewer: a stand-in for an image being truncated mid-export.
  const shrinking = '/sys/kernel/mm/transparent_hugepage/enabled';
  let st;
  try {
    st = statSync(shrinking);
  } catch {
    t.skip(`${shrinking} not present`);
    return;
  }
  if (!st.isFile() || st.size <= readFileSync(shrinking).length) {
    t.skip(`${shrinking} does not over-report its size here`);
    return;
  }
  const { base } = sandbox(t);
  const out = join(base, 'img.tar.zst');
  await assert.rejects(
    writeBundle(shrinking, manifestFor(st.size), out),
    appError('operation_failed', /changed size while it was being exported/),
  );
  assert.deepEqual(readdirSync(base), ['dest'], 'no bundle and no .partial left behind');
});
