import { readFile, stat } from 'node:fs/promises';
import { AppError, errorMessage, precondition } from '../errors.js';
import { checkUrl, downloadText, type FetchPolicy } from '../net/download.js';
import type { HttpFetch } from '../net/transport.js';
import { EMBEDDED_IMAGES, EMBEDDED_KERNELS, type BuildImageEntry } from './embedded.js';
import { parseCatalogImages, type CatalogImageEntry } from './images.js';
import { mergeKernelCatalog, parseCatalogFile, type KernelCatalogEntry, type TarballKernelEntry } from './kernels.js';

/*
 * The one catalog: the embedded entries (embedded.ts) with the config's
 * `catalog` file (a path or an http(s)/file URL) merged over them. Kernel and
 * image services both ask this, never the file.
 *
 * Caching: a catalog URL is downloaded at most once per CATALOG_URL_TTL_MS
 * (5 minutes) per daemon; calls in between, and concurrent calls, share that
 * download. A local path is re-read only when its size or mtime changed, so
 * an edit shows at once. A failed load is not cached: the next call tries
 * again. Restarting the daemon drops the cache.
 */

/** How long a downloaded catalog is reused before it is fetched again. */
export const CATALOG_URL_TTL_MS = 5 * 60 * 1000;
/** A catalog file larger than this is refused (it lists entries, not data). */
export const MAX_CATALOG_BYTES = 4 * 1024 * 1024;

export interface CatalogOptions {
  /** config `catalog`: a path or URL of an extra catalog JSON, or undefined for the embedded one alone. */
  source: string | undefined;
  /** Plain-http policy for a catalog URL (config insecure_registries). */
  policy: FetchPolicy;
  /** The HTTP transport (the daemon's, with its proxy settings). */
  http?: HttpFetch | undefined;
  /** Lives as long as the daemon: a load finishes even when the asking client goes away. */
  signal: AbortSignal;
  /** Clock (tests). */
  now?: () => number;
}

interface FileDoc {
  kernels: TarballKernelEntry[];
  images: unknown[];
}

interface Cached {
  doc: FileDoc;
  /** URL: when it was fetched; path: size and mtime it was read at. */
  stamp: string | number;
}

const isUrl = (source: string): boolean => /^[a-z]+:\/\//.test(source);

export class Catalog {
  readonly #o: CatalogOptions;
  #cached: Cached | undefined;
  #loading: Promise<FileDoc> | undefined;

  constructor(o: CatalogOptions) {
    this.#o = o;
  }

  /** The embedded kernels merged with the file's (file wins by name), sorted by name. */
  async kernels(): Promise<KernelCatalogEntry[]> {
    const file = this.#o.source === undefined ? [] : (await this.#file()).kernels;
    return mergeKernelCatalog(EMBEDDED_KERNELS, file);
  }

  async kernel(name: string): Promise<KernelCatalogEntry | undefined> {
    return (await this.kernels()).find((e) => e.name === name);
  }

  /** Image bundles listed in the catalog file. */
  async images(): Promise<CatalogImageEntry[]> {
    if (this.#o.source === undefined) return [];
    return parseCatalogImages((await this.#file()).images, this.#o.source);
  }

  async image(name: string): Promise<CatalogImageEntry | undefined> {
    return (await this.images()).find((e) => e.name === name);
  }

  /** An embedded build recipe by name. */
  recipe(name: string): BuildImageEntry | undefined {
    return EMBEDDED_IMAGES.find((i) => i.name === name);
  }

  /** The recipe `image build` starts from: the named one, else the first embedded one. */
  baseRecipe(name: string): BuildImageEntry | undefined {
    return this.recipe(name) ?? EMBEDDED_IMAGES[0];
  }

  async #file(): Promise<FileDoc> {
    const source = this.#o.source as string;
    const stamp = isUrl(source) ? undefined : await this.#pathStamp(source);
    const c = this.#cached;
    if (c !== undefined) {
      if (stamp === undefined && this.#now() - (c.stamp as number) < CATALOG_URL_TTL_MS) return c.doc;
      if (stamp !== undefined && stamp === c.stamp) return c.doc;
    }
    // Concurrent callers share one load.
    this.#loading ??= this.#load(source, stamp).finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #load(source: string, stamp: string | undefined): Promise<FileDoc> {
    const fetchedAt = this.#now();
    const text = isUrl(source) ? await this.#download(source) : await this.#read(source);
    const doc = parseCatalogFile(text, source);
    this.#cached = { doc, stamp: stamp ?? fetchedAt };
    return doc;
  }

  async #download(source: string): Promise<string> {
    return downloadText(checkUrl(source, this.#o.policy), MAX_CATALOG_BYTES, {
      signal: this.#o.signal,
      fetch: this.#o.http,
      policy: this.#o.policy,
    });
  }

  async #read(source: string): Promise<string> {
    const text = await readFile(source, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw this.#unreadable(source, e.code ?? e.message);
    });
    if (Buffer.byteLength(text) > MAX_CATALOG_BYTES)
      throw this.#unreadable(source, `larger than ${MAX_CATALOG_BYTES} bytes`);
    return text;
  }

  async #pathStamp(source: string): Promise<string> {
    try {
      const st = await stat(source);
      return `${st.size}:${st.mtimeMs}`;
    } catch (e) {
      throw this.#unreadable(source, (e as NodeJS.ErrnoException).code ?? errorMessage(e));
    }
  }

  #unreadable(source: string, why: string): AppError {
    return precondition(`cannot read the catalog file ${source}: ${why}`, 'fix or remove `catalog` in config.toml');
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }
}
