import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { TestContext } from 'node:test';
import { extract, pack, type Header } from 'tar-stream';
import { compress } from 'zstd-napi';
import { AppError } from '../../src/errors.js';

/*
 * Builders for the tests of the strict tar.zst extractors (kernel tarballs,
 * image bundles): archives from entry specs, inputs that stream, stall or
 * fail, and a scratch directory to extract into.
 */

/** One tar entry: a regular file unless `type` says otherwise. */
export interface TarSpec {
  name: string;
  type?: Header['type'];
  linkname?: string;
  body?: Buffer | string;
}

/** A tar archive of `entries` in order (mode 0755 for directories, 0644 otherwise; mtime 0). */
export async function tarBuffer(entries: TarSpec[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    const { body, ...header } = e;
    const type = header.type ?? 'file';
    p.entry({ mode: type === 'directory' ? 0o755 : 0o644, mtime: new Date(0), ...header, type }, body ?? '');
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** tarBuffer(), zstd-compressed. */
export const tarZst = async (entries: TarSpec[]): Promise<Buffer> => compress(await tarBuffer(entries));

/** Lowercase hex sha256, as the extractors' pins are written. */
export const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Splits the archive into small chunks so the pipeline sees a real stream. */
export const streamOf = (b: Buffer): Readable => {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += 1000) parts.push(b.subarray(i, i + 1000));
  return Readable.from(parts);
};

/** Yields the first 100 bytes of `archive`, then fails like a cut download. */
export function failingInput(archive: Buffer): Readable {
  async function* failing(): AsyncGenerator<Buffer> {
    yield archive.subarray(0, 100);
    throw new AppError('operation_failed', 'download truncated: got 100 of 9999 bytes from x');
  }
  return Readable.from(failing());
}

export interface StallingInput {
  input: Readable;
  /** Aborted 10 ms after the input sent its first bytes. */
  signal: AbortSignal;
  /** Whether the input was destroyed. */
  destroyed(): boolean;
}

/** Sends the first 64 bytes of `archive`, then stalls like a slow server until `signal` aborts. */
export function stallingInput(archive: Buffer): StallingInput {
  const ac = new AbortController();
  let destroyed = false;
  let sent = false;
  const input = new Readable({
    read() {
      if (sent) return;
      sent = true;
      this.push(archive.subarray(0, 64));
      setTimeout(() => ac.abort(), 10);
    },
    destroy(err, cb) {
      destroyed = true;
      cb(err);
    },
  });
  return { input, signal: ac.signal, destroyed: () => destroyed };
}

export interface Sandbox {
  base: string;
  dest: string;
}

/** base/dest (the extraction target) inside a fresh temp base/, so escapes into base/ are observable; removed after the test. */
export function sandbox(t: TestContext, prefix: string): Sandbox {
  const base = mkdtempSync(join(tmpdir(), prefix));
  const dest = join(base, 'dest');
  mkdirSync(dest);
  t.after(() => rmSync(base, { recursive: true, force: true }));
  return { base, dest };
}

/** An assert.rejects/throws validator: an AppError with `code` whose message matches `re`. */
export function appError(code: AppError['code'], re: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof AppError, `expected AppError, got ${e instanceof Error ? e.stack : String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  };
}

/** name → content of the regular files in a tar stream (a leading ./ dropped). */
export async function untar(stream: Readable): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const ex = extract();
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      if (entry.header.type === 'file')
        out[entry.header.name.replace(/^\.\//, '')] = Buffer.concat(chunks).toString('utf8');
    }
  })();
  stream.on('error', (e) => ex.destroy(e));
  stream.pipe(ex);
  await done;
  return out;
}
