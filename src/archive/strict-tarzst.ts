import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { DecompressStream } from 'zstd-napi';
import { AppError, badRequest, cancelled, errorMessage, operationFailed } from '../errors.js';
import { HashingStream } from '../net/hashing.js';
import { normalizeEntryPath, type TarEntry } from './tar-entry.js';

/*
 * The streaming half of the strict tar.zst extractors (kernel tarballs in
 * kernel/tarball.ts, image bundles in imagepull/bundle.ts): input → sha256 →
 * zstd → tar, one entry at a time, with aborts, stream errors and teardown
 * handled the same way for both. What an archive may hold is up to the caller.
 */

/** One entry of a strict archive, its name already normalised and found acceptable. */
export interface StrictEntry {
  /** The entry as tar-stream yields it; the callback consumes or drains its data. */
  entry: TarEntry;
  /** The normalised relative path ('' is the archive root). */
  rel: string;
  /** tar-stream's entry type; null when it did not know the type. */
  type: string | null;
  /** badRequest 'unsafe entry in SCOPE: "name" (reason)' with the unsafe hint. */
  unsafe(reason: string): AppError;
  /** badRequest 'unexpected entry in SCOPE: "name"' (with ' (detail)' when given) and the layout hint. */
  unexpected(detail?: string): AppError;
}

export interface StrictTarZstOptions {
  /** The archive in stream errors: 'cannot read A: …', 'A is truncated or corrupt: …', 'cannot extract A into DEST: …'. */
  archive: string;
  /** The archive in entry errors: 'unsafe entry in S: …', 'unexpected entry in S: …'. */
  entryScope: string;
  unsafeHint: string;
  layoutHint: string;
  /** Where the callback extracts to; only named in errors. */
  dest: string;
  /** Names the archive in a sha256 mismatch (normally the URL). */
  label: string;
  /** sha256 (hex, any case) of the compressed bytes. */
  expectedSha256: string;
  /** Hint of the sha256 mismatch error. */
  mismatchHint: string;
  signal?: AbortSignal | undefined;
}

function destroyQuietly(stream: { destroy(err?: Error): unknown }): void {
  try {
    stream.destroy();
  } catch {
    // already torn down
  }
}

/**
 * Why a strict extractor refuses an entry type outright: hardlinks, device
 * nodes, fifos and types tar-stream does not know. Undefined for regular
 * files, directories and symlinks, which each extractor judges itself.
 */
export function refusedEntryType(type: string | null): string | undefined {
  switch (type) {
    case 'file':
    case 'contiguous-file':
    case 'directory':
    case 'symlink':
      return undefined;
    case 'link':
      return 'hardlink';
    case 'character-device':
    case 'block-device':
    case 'fifo':
      return type;
    default:
      return `unsupported entry type ${type ?? 'unknown'}`;
  }
}

function strictEntry(entry: TarEntry, opts: StrictTarZstOptions): StrictEntry {
  const name = entry.header.name;
  const unsafe = (reason: string): AppError =>
    badRequest(`unsafe entry in ${opts.entryScope}: ${JSON.stringify(name)} (${reason})`, opts.unsafeHint);
  const unexpected = (detail?: string): AppError =>
    badRequest(
      `unexpected entry in ${opts.entryScope}: ${JSON.stringify(name)}${detail === undefined ? '' : ` (${detail})`}`,
      opts.layoutHint,
    );
  const norm = normalizeEntryPath(name);
  if ('reason' in norm) throw unsafe(norm.reason);
  return { entry, rel: norm.rel, type: entry.header.type as string | null, unsafe, unexpected };
}

/**
 * Streams `input` (tar.zst bytes) through a HashingStream, zstd decompression
 * and tar extraction, handing each entry to `onEntry` in archive order once
 * its name passed normalizeEntryPath (absolute paths, '..' components and
 * control characters are refused as unsafe). An error thrown by `onEntry`
 * stops the extraction and is passed on (AppErrors as they are, fs errors as
 * 'cannot extract …', anything else as 'truncated or corrupt').
 *
 * Errors of `input` are passed on when they are AppErrors (e.g. a truncated
 * download) and become 'cannot read …' otherwise; an input that closes before
 * its end is 'truncated'; bad zstd or tar data is 'truncated or corrupt'; an
 * abort rejects as 'cancelled'. On failure every stream here is destroyed
 * before the promise rejects.
 *
 * The sha256 covers the compressed bytes, so it is only checked once the
 * input ended (mismatch → badRequest 'sha256 mismatch for LABEL: expected X,
 * got Y'): whatever `onEntry` wrote is on disk by then. Returns the digest
 * (lowercase hex) and the number of compressed bytes.
 */
export async function extractStrictTarZst(
  input: Readable,
  onEntry: (entry: StrictEntry) => Promise<void>,
  opts: StrictTarZstOptions,
): Promise<{ sha256: string; bytes: number }> {
  const { archive, signal } = opts;
  if (signal?.aborted) {
    input.destroy();
    throw cancelled();
  }
  const hasher = new HashingStream();
  const unzstd = new DecompressStream();
  const ex = extract();

  let failure: AppError | undefined;
  const teardown = (): void => {
    for (const s of [input, hasher, unzstd]) destroyQuietly(s);
  };
  const fail = (err: AppError): void => {
    failure ??= err;
    teardown();
    ex.destroy(failure);
  };
  const corrupt = (err: unknown): AppError =>
    operationFailed(`${archive} is truncated or corrupt: ${errorMessage(err)}`, { cause: err });
  const onInputError = (err: unknown): void => {
    fail(
      err instanceof AppError ? err : operationFailed(`cannot read ${archive}: ${errorMessage(err)}`, { cause: err }),
    );
  };
  const onDecompressError = (err: unknown): void => fail(corrupt(err));
  const onAbort = (): void => fail(cancelled());
  const onInputClose = (): void => {
    if (!input.readableEnded) fail(operationFailed(`${archive} is truncated: the input closed before its end`));
  };

  input.on('error', onInputError);
  input.on('close', onInputClose);
  hasher.on('error', onInputError);
  unzstd.on('error', onDecompressError);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    input.pipe(hasher).pipe(unzstd).pipe(ex);
    for await (const entry of ex) {
      if (failure !== undefined) throw failure;
      await onEntry(strictEntry(entry as TarEntry, opts));
    }
    if (failure !== undefined) throw failure;
  } catch (err) {
    // fs errors (ENOSPC, EACCES, ...) carry a syscall; everything else here comes from the tar parser.
    const fsError = typeof (err as NodeJS.ErrnoException | undefined)?.syscall === 'string';
    fail(
      err instanceof AppError
        ? err
        : fsError
          ? operationFailed(`cannot extract ${archive} into ${opts.dest}: ${errorMessage(err)}`, { cause: err })
          : corrupt(err),
    );
    throw failure ?? err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    input.removeListener('close', onInputClose);
  }

  const sha256 = hasher.digest();
  const want = opts.expectedSha256.toLowerCase();
  if (sha256 !== want) {
    throw badRequest(`sha256 mismatch for ${opts.label}: expected ${want}, got ${sha256}`, opts.mismatchHint);
  }
  return { sha256, bytes: hasher.bytes() };
}
