import { readFile } from 'node:fs/promises';
import { BlobCache } from '../../imagepull/blobcache.js';
import { openVerifiedLayer, uncompressedSizeHint } from '../../imagepull/layers.js';
import { formatReference, type ImageRef } from '../../imagepull/reference.js';
import { RegistryClient, type ResolvedImage } from '../../imagepull/registry.js';
import type { HttpFetch } from '../../net/transport.js';
import type { OpContext } from '../context.js';
import { runtimeConfig } from './oci-config.js';
import type { LayerInput } from './pipeline.js';

const DOWNLOAD_PARALLELISM = 3;

export interface OciFetchOptions {
  insecureHosts: readonly string[];
  /** The HTTP transport (the daemon's, with its proxy settings). */
  http?: HttpFetch | undefined;
  dockerConfigPath: string;
  signal: AbortSignal;
  /** Called with the layer digests as soon as the manifest is known (before any download). */
  onManifest?: (digests: string[]) => void;
}

/**
 * Resolves an OCI reference and makes sure every layer blob is in the
 * content-addressed cache (digests verified while streaming), then returns
 * the layers as pipeline inputs whose uncompressed streams are checked
 * against the config's diff_ids.
 */
export async function fetchOciLayers(
  ref: ImageRef,
  cache: BlobCache,
  opts: OciFetchOptions,
  ctx: OpContext,
): Promise<{ resolved: ResolvedImage; layers: LayerInput[] }> {
  const dockerConfig = await readFile(opts.dockerConfigPath, 'utf8').catch(() => undefined);
  const client = new RegistryClient({
    insecureHosts: opts.insecureHosts,
    signal: opts.signal,
    ...(opts.http === undefined ? {} : { fetch: opts.http }),
    ...(dockerConfig ? { dockerConfig } : {}),
  });
  const resolved = await client.resolve(ref);
  const { manifest, config } = resolved;
  opts.onManifest?.(manifest.layers.map((l) => l.digest));
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new Error(
      `image config lists ${config.rootfs.diff_ids.length} diff_ids for ${manifest.layers.length} layers`,
    );
  }
  const total = manifest.layers.reduce((n, l) => n + l.size, 0);
  let done = 0;
  const queue = manifest.layers.map((l, i) => ({ l, i }));
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const { l, i } = next;
      const cached = await cache.has(l.digest);
      if (!cached) {
        ctx.progress({
          stage: 'download',
          message: `layer ${i + 1}/${manifest.layers.length} ${l.digest.slice(7, 19)} (${Math.round(l.size / 1048576)} MiB)`,
          current: done,
          total,
        });
        await cache.put(l.digest, () => client.blob(ref, l.digest, l.size));
      }
      done += l.size;
      ctx.progress({ stage: 'download', message: `${manifest.layers.length} layer(s)`, current: done, total });
    }
  };
  await Promise.all(Array.from({ length: Math.min(DOWNLOAD_PARALLELISM, queue.length) }, worker));
  const layers: LayerInput[] = manifest.layers.map((l, i) => ({
    label: `layer ${i + 1}/${manifest.layers.length} (${l.digest})`,
    open: async () => ({
      stream: await openVerifiedLayer(cache.path(l.digest), l, i, config.rootfs.diff_ids[i] as string, opts.signal),
    }),
    sizeHint: () => uncompressedSizeHint(cache.path(l.digest)),
  }));
  return { resolved, layers };
}

/** What manifest.json records of an OCI pull: where it came from and its runtime config (oci-config.ts). */
export function ociManifestFields(ref: ImageRef, resolved: ResolvedImage): Record<string, unknown> {
  return {
    ref: formatReference(ref),
    manifest_digest: resolved.manifestDigest,
    config_digest: resolved.configDigest,
    config: runtimeConfig(resolved.config.config, formatReference(ref)),
  };
}
