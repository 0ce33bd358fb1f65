/**
 * The embedded catalog: what banger can fetch anywhere a Debian mirror is
 * reachable. Tarball entries from a team's `catalog` file are merged over it
 * (kernel issue).
 */
export interface DistroKernelEntry {
  kind: 'distro';
  name: string;
  distro: string;
  /** Metapackage resolved through the host's apt to the concrete kernel package. */
  package: string;
}

export interface BuildImageEntry {
  kind: 'build';
  name: string;
  distro: string;
  suite: string;
  packages: readonly string[];
  kernel: string;
}

/** SPEC §6.3 package set, plus the base pieces a bootable systemd guest needs. */
export const DEFAULT_IMAGE_PACKAGES = [
  // e2fsprogs: resize2fs grows the root filesystem into the overlay at first boot (not in variant=apt).
  'systemd',
  'systemd-sysv',
  'udev',
  'dbus',
  'kmod',
  'e2fsprogs',
  'openssh-server',
  'iproute2',
  'ca-certificates',
  'git',
  'curl',
  'jq',
  'sudo',
  'procps',
  'less',
  'vim-tiny',
  'make',
  'gcc',
  'python3',
  'rsync',
  'unzip',
  'xz-utils',
  'zstd',
  'dnsutils',
  'netcat-openbsd',
  'tmux',
] as const;

export const EMBEDDED_KERNELS: readonly DistroKernelEntry[] = [
  { kind: 'distro', name: 'debian-bookworm-cloud', distro: 'debian', package: 'linux-image-cloud-amd64' },
];

export const EMBEDDED_IMAGES: readonly BuildImageEntry[] = [
  {
    kind: 'build',
    name: 'debian-bookworm',
    distro: 'debian',
    suite: 'bookworm',
    packages: DEFAULT_IMAGE_PACKAGES,
    kernel: 'debian-bookworm-cloud',
  },
];

export const findKernelEntry = (name: string): DistroKernelEntry | undefined =>
  EMBEDDED_KERNELS.find((k) => k.name === name);
export const findImageEntry = (name: string): BuildImageEntry | undefined =>
  EMBEDDED_IMAGES.find((i) => i.name === name);
