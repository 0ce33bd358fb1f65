import { z } from 'zod';
import { badRequest } from '../errors.js';

/** An image bundle published in a team's catalog file (SPEC §6.2). */
export interface CatalogImageEntry {
  name: string;
  distro: string;
  url: string;
  sha256: string;
  kernelRef: string | undefined;
}

const entry = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/),
  distro: z.string().optional(),
  tarball_url: z.string().regex(/^(https?|file):\/\//),
  tarball_sha256: z.string().regex(/^[0-9a-fA-F]{64}$/),
  kernel_ref: z.string().optional(),
});

/** Validates the catalog file's `images` array; errors name the entry and field. */
export function parseCatalogImages(raw: readonly unknown[], source: string): CatalogImageEntry[] {
  return raw.map((r, i) => {
    const parsed = entry.safeParse(r);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue ? [`images[${i}]`, ...issue.path.map(String)].join('.') : `images[${i}]`;
      const what =
        issue?.code === 'unrecognized_keys'
          ? `unknown key "${issue.keys.join('", "')}"`
          : (issue?.message ?? 'invalid');
      throw badRequest(
        `${source}: ${where}: ${what}`,
        'an image entry has name, tarball_url, tarball_sha256 and optionally distro and kernel_ref',
      );
    }
    const d = parsed.data;
    return {
      name: d.name,
      distro: d.distro ?? 'unknown',
      url: d.tarball_url,
      sha256: d.tarball_sha256.toLowerCase(),
      kernelRef: d.kernel_ref,
    };
  });
}
