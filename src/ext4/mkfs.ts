/**
 * mkfs.ext4 argv builders. `-d` populates the filesystem from a directory
 * without mounting anything; `root_owner=0:0` because the tree may belong to
 * an unprivileged user. Sizes are bytes, passed as KiB (mkfs's k suffix).
 */
export function mkfsFromTreeArgv(opts: {
  image: string;
  tree: string;
  sizeBytes: number;
  label: string;
  inodes?: number;
}): string[] {
  const argv = [
    'mkfs.ext4',
    '-q',
    '-F',
    '-T',
    'default',
    '-b',
    '4096',
    '-L',
    opts.label,
    '-d',
    opts.tree,
    '-E',
    'root_owner=0:0',
  ];
  if (opts.inodes !== undefined) argv.push('-N', String(opts.inodes));
  argv.push(opts.image, `${Math.ceil(opts.sizeBytes / 1024)}k`);
  return argv;
}

/** Default rootfs size (SPEC §6.1): max(content × 1.5, 1 GiB), whole MiB. */
export function defaultRootfsBytes(contentBytes: number): number {
  return Math.ceil(Math.max(contentBytes * 1.5, 1 << 30) / 1048576) * 1048576;
}

/**
 * Work-seed size: small (it is copied and grown per VM) but with the inode
 * density of a full disk: inodes per group stay fixed when resize2fs grows it,
 * so the seed gets 8192 inodes in its single group (one per 16 KiB at 128 MiB groups).
 */
export function workSeedSpec(contentBytes: number): { sizeBytes: number; inodes: number } {
  const size = Math.ceil(Math.max(contentBytes * 2 + 8 * 1048576, 32 * 1048576) / 1048576) * 1048576;
  const groups = Math.ceil(size / (128 * 1048576));
  return { sizeBytes: size, inodes: groups * 8192 };
}
