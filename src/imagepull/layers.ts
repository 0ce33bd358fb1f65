import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { PassThrough, pipeline, type Readable, type Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DecompressStream } from 'zstd-napi';
import { readHead } from '../archive/read-head.js';
import { AppError, badRequest, cancelled, operationFailed } from '../errors.js';
import { HashingStream } from '../net/hashing.js';

/*
 * Layer blobs → uncompressed tar streams. The media type says how a layer is
 * compressed; the first bytes of the blob have the last word, because some
 * older tools labelled uncompressed layers as gzip. Either way the
 * uncompressed bytes are checked against the config's diff_id.
 */

export type LayerCompression = 'gzip' | 'zstd' | 'none';

const LAYER_MEDIA_TYPES: Readonly<Record<string, LayerCompression>> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.diff.tar.zstd': 'zstd',
};

/** How a layer media type is compressed, or undefined for a media type that is not a supported layer (e.g. Windows foreign layers). */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  return Object.hasOwn(LAYER_MEDIA_TYPES, mediaType) ? LAYER_MEDIA_TYPES[mediaType] : undefined;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const STREAM_CHUNK = 1024 * 1024;
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Compression recognised from a blob's first bytes; 'none' when neither gzip nor zstd. */
export function sniffCompression(head: Uint8Array): LayerCompression {
  const starts = (magic: number[]): boolean => head.length >= magic.length && magic.every((b, i) => head[i] === b);
  if (starts(GZIP_MAGIC)) return 'gzip';
  if (starts(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/**
 * The uncompressed size a layer blob declares about itself, without reading
 * it: a gzip member's ISIZE trailer (mod 2^32, last member only), a zstd
 * frame header's content size (when the compressor wrote one), an
 * uncompressed blob's length. Untrusted and possibly wrong: only a hint to
 * size an image before writing it (a wrong hint costs a second pass, never
 * correctness). Undefined when the blob does not say.
 */
export async function uncompressedSizeHint(path: string): Promise<number | undefined> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, 18));
    await fh.read(head, 0, head.length, 0);
    const kind = sniffCompression(head);
    if (kind === 'none') return size;
    if (kind === 'gzip') {
      if (size < 18) return undefined;
      const tail = Buffer.alloc(4);
      await fh.read(tail, 0, 4, size - 4);
      const isize = tail.readUInt32LE(0);
      // ISIZE is mod 2^32: add the wraps a blob this big must have had (deflate expands at most ~0.03 %).
      return isize + Math.floor(size / 2 ** 32) * 2 ** 32;
    }
    return zstdContentSize(head);
  } finally {
    await fh.close();
  }
}

/** Frame_Content_Size of a zstd frame header, or undefined when the frame does not carry it. */
function zstdContentSize(h: Buffer): number | undefined {
  if (h.length < 6) return undefined;
  const fhd = h[4] as number;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const didFlag = fhd & 3;
  if (fcsFlag === 0 && single === 0) return undefined;
  const off = 5 + (single ? 0 : 1) + [0, 1, 2, 4][didFlag]!;
  const len = [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (h.length < off + len) return undefined;
  if (len === 1) return h.readUInt8(off);
  if (len === 2) return h.readUInt16LE(off) + 256;
  if (len === 4) return h.readUInt32LE(off);
  return Number(h.readBigUInt64LE(off));
}

export interface OpenLayerOptions {
  /** Names the layer in errors, e.g. 'layer 2 (sha256:…)'; defaults to the path. */
  label?: string;
  signal?: AbortSignal;
}

/**
 * Opens a cached layer blob as an uncompressed tar stream. The media type must
 * be a supported layer type (badRequest otherwise); gzip and zstd are
 * decompressed. A corrupt compressed stream fails the returned stream with an
 * operationFailed naming the layer.
 */
export async function openLayer(path: string, mediaType: string, opts: OpenLayerOptions = {}): Promise<Readable> {
  const label = opts.label ?? path;
  const declared = layerCompression(mediaType);
  if (declared === undefined) {
    throw badRequest(
      `${label} has unsupported media type ${JSON.stringify(mediaType)}`,
      'banger can unpack tar layers that are uncompressed, gzip or zstd',
    );
  }
  let head: Buffer;
  try {
    head = await readHead(path, ZSTD_MAGIC.length);
  } catch (err) {
    throw operationFailed(`cannot open ${label}: ${(err as Error).message}`, { cause: err });
  }
  const actual = sniffCompression(head);
  // 1 MiB reads and gzip output chunks: with zlib's 16 KiB default, its per-chunk callbacks cost as much as the inflating.
  const source = createReadStream(path, {
    highWaterMark: STREAM_CHUNK,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (actual === 'none') return source;
  const decompressor: Transform =
    actual === 'gzip' ? createGunzip({ chunkSize: STREAM_CHUNK }) : new DecompressStream();
  const out = new PassThrough();
  // pipe() rather than pipeline(): pipeline would destroy `out` with the raw zlib/zstd error first.
  let failed = false;
  const fail = (err: Error): void => {
    if (failed) return;
    failed = true;
    if (err instanceof AppError) out.destroy(err);
    else if (opts.signal?.aborted) out.destroy(cancelled());
    else {
      out.destroy(
        operationFailed(`${label} is corrupt: ${actual} decompression failed: ${err.message}`, {
          cause: err,
          hint: 'delete the cached blob (banger image prune) and pull again',
        }),
      );
    }
  };
  source.on('error', fail);
  decompressor.on('error', fail);
  out.on('close', () => {
    source.destroy();
    decompressor.destroy();
  });
  source.pipe(decompressor).pipe(out);
  return out;
}

export interface DiffIdVerifierOptions {
  /** Position of the layer in the manifest, 0-based. */
  index: number;
  /** The config's rootfs.diff_ids[index], 'sha256:…'. */
  diffId: string;
  /** The (compressed) layer blob digest, for the error message. */
  layerDigest?: string;
}

/**
 * A HashingStream over the uncompressed layer stream that, at the end, fails
 * with an operationFailed naming the layer index and both digests if it does
 * not match the diff_id.
 */
export function diffIdVerifier(opts: DiffIdVerifierOptions): HashingStream {
  return new HashingStream({
    check: (hex, bytes) => {
      const got = `sha256:${hex}`;
      if (got === opts.diffId) return undefined;
      const { index, diffId, layerDigest } = opts;
      return operationFailed(
        `layer ${index}${layerDigest === undefined ? '' : ` (${layerDigest})`} does not match the image config: its uncompressed content (${bytes} bytes) hashes to ${got} but rootfs.diff_ids[${index}] is ${diffId}`,
        {
          hint: 'the image is corrupt or was tampered with; delete the cached blob (banger image prune) and pull again, or rebuild the image',
        },
      );
    },
  });
}

/**
 * openLayer piped through a diffIdVerifier: the uncompressed tar stream of
 * layer `index`, failing at its end unless it hashes to `diffId`.
 */
export async function openVerifiedLayer(
  path: string,
  layer: { mediaType: string; digest: string },
  index: number,
  diffId: string,
  signal?: AbortSignal,
): Promise<Readable> {
  const label = `layer ${index} (${layer.digest})`;
  const tar = await openLayer(path, layer.mediaType, signal === undefined ? { label } : { label, signal });
  const verifier = diffIdVerifier({ index, diffId, layerDigest: layer.digest });
  pipeline(tar, verifier, () => undefined);
  return verifier;
}
