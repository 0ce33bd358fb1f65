import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compress } from 'zstd-napi';
import { writeBundle } from '../../src/imagepull/bundle.js';
import { fakeBzImage } from './fake-kernel.js';
import { sh, TEST_CONFIG } from './home.js';
import { tarBuffer } from './tar-zst.js';

/*
 * Stand-ins for tests that never boot: a kernel that only looks like one and
 * a tiny image bundle, published in a catalog file with file:// URLs.
 */

/**
 * Writes into `dir` a catalog with a tarball kernel `tiny-k` and an image
 * bundle `tiny` (16 MiB ext4, kernel_ref tiny-k); returns the catalog's path.
 */
export async function makeTinyCatalog(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const kernelTar = join(dir, 'tiny-k.tar.zst');
  writeFileSync(kernelTar, compress(await tarBuffer([{ name: 'bzImage', body: fakeBzImage('9.9.9-tiny') }])));
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'root'), { recursive: true });
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'os-release'), 'ID=debian\n');
  writeFileSync(join(tree, 'root', '.profile'), '# tiny\n');
  const rootfs = join(dir, 'rootfs.ext4');
  const mk = sh(['mkfs.ext4', '-q', '-F', '-d', tree, rootfs, '16M']);
  assert.equal(mk.code, 0, mk.stderr);
  const bundle = join(dir, 'tiny.tar.zst');
  const res = await writeBundle(
    rootfs,
    {
      format: 1,
      name: 'tiny',
      distro: 'debian',
      arch: 'x86_64',
      kernel_ref: 'tiny-k',
      rootfs_bytes: 16 << 20,
      assets_version: 1,
      created_at: new Date().toISOString(),
    },
    bundle,
    new AbortController().signal,
  );
  const file = join(dir, 'catalog.json');
  const sha = createHash('sha256').update(readFileSync(kernelTar)).digest('hex');
  writeFileSync(
    file,
    JSON.stringify({
      kernels: [{ name: 'tiny-k', distro: 'test', version: '9.9.9', url: `file://${kernelTar}`, sha256: sha }],
      images: [
        {
          name: 'tiny',
          distro: 'debian',
          tarball_url: `file://${bundle}`,
          tarball_sha256: res.sha256,
          kernel_ref: 'tiny-k',
        },
      ],
    }),
  );
  return file;
}

/** Points a home's config at a tiny catalog: `tiny` is the default image, `tiny-k` the default kernel. */
export function useTinyCatalog(root: string, catalog: string): void {
  mkdirSync(join(root, 'config', 'banger'), { recursive: true });
  writeFileSync(
    join(root, 'config', 'banger', 'config.toml'),
    `${TEST_CONFIG}catalog = "${catalog}"\ndefault_image_name = "tiny"\ndefault_kernel_name = "tiny-k"\n`,
  );
}
