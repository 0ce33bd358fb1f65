import { createWriteStream } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extractStrictTarZst, refusedEntryType, type StrictEntry } from '../archive/strict-tarzst.js';
import { drain, hasControlChar, lstatOrNull, type TarEntry } from '../archive/tar-entry.js';
import { AppError, badRequest } from '../errors.js';
import { kernelFormat } from './apt.js';

export interface KernelTarballResult {
  kernelFile: 'vmlinux' | 'bzImage';
  hasInitrd: boolean;
  /** Regular files under modules/. */
  moduleFiles: number;
  /** sha256 of the whole compressed tarball as streamed. */
  sha256: string;
  /** Bytes of the compressed tarball. */
  bytes: number;
}

const KERNEL_FILES = ['vmlinux', 'bzImage'] as const;
type KernelFile = (typeof KERNEL_FILES)[number];
const INITRD = 'initrd.img';
const MODULES = 'modules';
/** Enough for kernelFormat() to recognise a bzImage (needs 0x206 bytes). */
const HEAD_BYTES = 4096;
const FILE_MODE = 0o644;
const DIR_MODE = 0o755;

const LAYOUT_HINT =
  'a kernel tarball holds vmlinux or bzImage, optionally initrd.img and a modules/ directory, at the archive root';
const UNSAFE_HINT = 'rebuild the tarball without that entry';

const isKernelFile = (rel: string): rel is KernelFile => (KERNEL_FILES as readonly string[]).includes(rel);

/** True when `path` is `dir` or below it (both absolute and normalised). */
function within(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep));
}

class TarballExtractor {
  readonly #dest: string;
  readonly #modulesRoot: string;
  readonly #seen = new Set<string>();
  kernelFile: KernelFile | undefined;
  kernelHead: Buffer = Buffer.alloc(0);
  hasInitrd = false;
  moduleFiles = 0;

  constructor(dest: string) {
    this.#dest = resolve(dest);
    this.#modulesRoot = join(this.#dest, MODULES);
  }

  async apply({ entry, rel, type, unsafe, unexpected }: StrictEntry): Promise<void> {
    const refused = refusedEntryType(type);
    if (refused !== undefined) throw unsafe(refused);
    if (rel === '') {
      if (type !== 'directory') throw unsafe('entry replaces the archive root');
      return drain(entry);
    }
    if (this.#seen.has(rel)) throw unsafe('duplicate entry');
    this.#seen.add(rel);

    if (isKernelFile(rel)) {
      if (type !== 'file' && type !== 'contiguous-file') throw unsafe(`${rel} must be a regular file`);
      if (this.kernelFile !== undefined) {
        throw badRequest(
          `kernel tarball holds both ${this.kernelFile} and ${rel}`,
          `keep exactly one of vmlinux and bzImage; ${LAYOUT_HINT}`,
        );
      }
      this.kernelFile = rel;
      await this.#writeFile(entry, rel, unsafe, true);
      return;
    }
    if (rel === INITRD) {
      if (type !== 'file' && type !== 'contiguous-file') throw unsafe(`${INITRD} must be a regular file`);
      await this.#writeFile(entry, rel, unsafe, false);
      this.hasInitrd = true;
      return;
    }
    if (rel === MODULES) {
      if (type !== 'directory') throw unsafe(`${MODULES} must be a directory`);
      await this.#mkdirChecked(rel, unsafe);
      return drain(entry);
    }
    if (!rel.startsWith(`${MODULES}/`)) throw unexpected();

    switch (type) {
      case 'directory':
        await this.#mkdirChecked(rel, unsafe);
        return drain(entry);
      case 'symlink':
        await this.#symlink(rel, entry.header.linkname ?? '', unsafe);
        return drain(entry);
      default:
        await this.#writeFile(entry, rel, unsafe, false);
        this.moduleFiles++;
    }
  }

  /** Makes every parent of `rel` a real directory (creating missing ones); fails on symlinks or files in the way. */
  async #parents(rel: string, unsafe: (reason: string) => AppError): Promise<void> {
    const parts = rel.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const host = join(this.#dest, ...parts.slice(0, i));
      const st = await lstatOrNull(host);
      if (st === null) await mkdir(host, { mode: DIR_MODE });
      else if (st.isSymbolicLink()) throw unsafe('path goes through a symlink');
      else if (!st.isDirectory()) throw unsafe('parent is not a directory');
    }
  }

  async #mkdirChecked(rel: string, unsafe: (reason: string) => AppError): Promise<void> {
    await this.#parents(rel, unsafe);
    const host = join(this.#dest, rel);
    const st = await lstatOrNull(host);
    // An implicit parent created for an earlier entry may already be here.
    if (st === null) await mkdir(host, { mode: DIR_MODE });
    else if (!st.isDirectory()) throw unsafe('a non-directory is already at this path');
  }

  async #symlink(rel: string, target: string, unsafe: (reason: string) => AppError): Promise<void> {
    if (target === '') throw unsafe('empty symlink target');
    if (hasControlChar(target)) throw unsafe('control character in symlink target');
    if (target.startsWith('/')) throw unsafe(`absolute symlink target ${JSON.stringify(target)}`);
    // '..' only as leading components: those walk up real directories (checked by #parents), so the lexical
    // check below matches the real resolution. 'l/..' through another link could land elsewhere.
    const parts = target.split('/').filter((p) => p !== '' && p !== '.');
    const firstName = parts.findIndex((p) => p !== '..');
    if (firstName >= 0 && parts.slice(firstName).includes('..'))
      throw unsafe(`symlink target ${JSON.stringify(target)} has '..' after a name`);
    const host = join(this.#dest, rel);
    if (!within(this.#modulesRoot, resolve(dirname(host), target)))
      throw unsafe(`symlink target ${JSON.stringify(target)} leaves modules/`);
    await this.#parents(rel, unsafe);
    // symlink() fails with EEXIST rather than replacing or following anything already there.
    await symlink(target, host);
  }

  async #writeFile(
    entry: TarEntry,
    rel: string,
    unsafe: (reason: string) => AppError,
    keepHead: boolean,
  ): Promise<void> {
    await this.#parents(rel, unsafe);
    const head: Buffer[] = [];
    let headBytes = 0;
    async function* chunks(): AsyncGenerator<Buffer> {
      for await (const chunk of entry) {
        const buf = chunk as Buffer;
        if (keepHead && headBytes < HEAD_BYTES) {
          head.push(buf.subarray(0, HEAD_BYTES - headBytes));
          headBytes += Math.min(buf.length, HEAD_BYTES - headBytes);
        }
        yield buf;
      }
    }
    // 'wx' is O_CREAT|O_EXCL: never follows or replaces a link planted at the final component.
    await pipeline(chunks(), createWriteStream(join(this.#dest, rel), { flags: 'wx', mode: FILE_MODE }));
    if (keepHead) this.kernelHead = Buffer.concat(head);
  }
}

/**
 * Streams `input` (tar.zst bytes) through a HashingStream, zstd decompression
 * and tar extraction (extractStrictTarZst) into `dest` (an empty existing
 * directory).
 *
 * Allowed entries: 'vmlinux' or 'bzImage' (regular file, exactly one),
 * 'initrd.img' (regular file), 'modules/' and anything below it (directories,
 * regular files, and symlinks that resolve inside dest/modules). A leading
 * './' is stripped. Anything else is `unexpected entry in kernel tarball`;
 * absolute paths, '..', control characters, device nodes, fifos, hardlinks,
 * duplicate paths, escaping symlinks and writes through symlinks are refused.
 *
 * The sha256 covers the compressed bytes, so it is only known at the end: files
 * are already on disk when a mismatch is reported, and the caller removes
 * `dest` on any error. On failure every stream here is destroyed before the
 * promise rejects. `label` (normally the URL) names the tarball in errors.
 */
export async function extractKernelTarball(
  input: Readable,
  dest: string,
  expectedSha256: string,
  label: string,
  signal?: AbortSignal,
): Promise<KernelTarballResult> {
  const out = new TarballExtractor(dest);
  const { sha256, bytes } = await extractStrictTarZst(input, (entry) => out.apply(entry), {
    archive: `kernel tarball from ${label}`,
    entryScope: 'kernel tarball',
    unsafeHint: UNSAFE_HINT,
    layoutHint: LAYOUT_HINT,
    dest,
    label,
    expectedSha256,
    mismatchHint: 'the file changed or the catalog pin is wrong',
    signal,
  });
  if (out.kernelFile === undefined)
    throw badRequest(`kernel tarball from ${label} holds no vmlinux or bzImage`, LAYOUT_HINT);
  const format = kernelFormat(out.kernelHead);
  const wantFormat = out.kernelFile === 'vmlinux' ? 'elf' : 'bzImage';
  if (format !== wantFormat) {
    throw badRequest(
      `${out.kernelFile} in the kernel tarball from ${label} is not ${wantFormat === 'elf' ? 'an ELF image' : 'a bzImage'} (found: ${format})`,
      'vmlinux must be the uncompressed ELF kernel and bzImage the compressed boot image (vmlinuz)',
    );
  }
  return { kernelFile: out.kernelFile, hasInitrd: out.hasInitrd, moduleFiles: out.moduleFiles, sha256, bytes };
}
