import { copyFile, link, mkdir, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { badRequest, notFound } from '../../errors.js';

/** The image's own copy of its kernel (hard links where possible). */
export const IMAGE_KERNEL_DIR = 'kernel';

/** ext4 superblock magic 0xEF53 at byte 1080. */
export async function assertExt4(path: string, flag: string): Promise<void> {
  const fh = await open(path, 'r').catch(() => {
    throw notFound(`${flag} ${path} does not exist`);
  });
  try {
    const b = Buffer.alloc(2);
    await fh.read(b, 0, 2, 1080);
    if (b.readUInt16LE(0) !== 0xef53)
      throw badRequest(
        `${flag} ${path} is not an ext4 filesystem image`,
        'pass a raw ext4 image file (e.g. made with mkfs.ext4 -d)',
      );
  } finally {
    await fh.close();
  }
}

/** Hard-links (or, across filesystems, copies) every file of `from` into `to`. */
export async function linkTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const f of await readdir(from)) {
    await link(join(from, f), join(to, f)).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EXDEV' && e.code !== 'EPERM') throw e;
      await copyFile(join(from, f), join(to, f));
    });
  }
}

/** Image names: like VM names plus '.' and '_' (derived OCI names use them). */
export function validateImageName(name: string): void {
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(name)) {
    const bad = [...name].findIndex((ch) => !/[a-z0-9._-]/.test(ch));
    throw badRequest(
      `invalid image name ${JSON.stringify(name)}${bad >= 0 ? `: character ${JSON.stringify(name[bad])} at position ${bad + 1} is not allowed` : ''}`,
      'image names are 1-63 characters of a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
    );
  }
}
