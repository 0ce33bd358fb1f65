import { badRequest } from '../errors.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
const TIB = 1024 * GIB;

const SIZE_UNITS: Record<string, number> = {
  '': MIB,
  b: 1,
  k: KIB,
  kib: KIB,
  m: MIB,
  mib: MIB,
  g: GIB,
  gib: GIB,
  t: TIB,
  tib: TIB,
};

/** Rounds away binary floating-point noise from decimal inputs such as '0.3s'. */
function snap(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - r) < 1e-6 ? r : x;
}

const SIZE_HINT = 'use a number with K, M or G (binary units), e.g. 8G; a bare number means MiB';

/**
 * Parses a size into bytes. Suffixes K/M/G/T and KiB/MiB/GiB/TiB are all
 * binary and case-insensitive, optionally separated by a space; 'B' means
 * bytes. A bare number (string or number) means MiB. The result must be a
 * positive whole number of bytes.
 */
export function parseSize(s: string | number, field: string): number {
  const fail = (): Error => badRequest(`invalid size for ${field}: ${JSON.stringify(String(s))}`, SIZE_HINT);
  let value: number;
  let unit: number;
  if (typeof s === 'number') {
    value = s;
    unit = MIB;
  } else {
    const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s?([a-zA-Z]*)\s*$/.exec(s);
    if (m === null || m[1] === undefined) throw fail();
    const u = SIZE_UNITS[(m[2] ?? '').toLowerCase()];
    if (u === undefined) throw fail();
    value = Number(m[1]);
    unit = u;
  }
  const bytes = snap(value * unit);
  if (!Number.isFinite(bytes) || bytes <= 0 || !Number.isSafeInteger(bytes)) throw fail();
  return bytes;
}

/**
 * The largest disk (work disk, root overlay, image rootfs) banger makes. Disk
 * files are sparse, so this is not about free space: an ext4 host file system
 * cannot hold a file of 16 TiB, and no sandbox needs more than this.
 */
export const MAX_DISK_BYTES = 8 * TIB;

/** Rejects a disk size above MAX_DISK_BYTES, naming `field` and the maximum. */
export function checkDiskSize(bytes: number, field: string): number {
  if (bytes > MAX_DISK_BYTES) {
    throw badRequest(
      `${field} ${formatSize(bytes)} is larger than the maximum disk size, ${formatSize(MAX_DISK_BYTES)}`,
      `use at most ${formatSize(MAX_DISK_BYTES)}; disks are sparse files, so a smaller size costs nothing until the guest writes`,
    );
  }
  return bytes;
}

const FORMAT_UNITS: readonly [string, number][] = [
  ['T', TIB],
  ['G', GIB],
  ['M', MIB],
  ['K', KIB],
];

/**
 * Compact human size that parseSize reads back to the same byte count: the
 * largest unit that expresses it with at most two decimals ('8G', '512M',
 * '1.5G'), else bytes with a 'B' suffix.
 */
export function formatSize(bytes: number): string {
  for (const [suffix, unit] of FORMAT_UNITS) {
    if (bytes < unit) continue;
    const hundredths = (bytes * 100) / unit;
    if (Number.isInteger(hundredths)) return `${hundredths / 100}${suffix}`;
  }
  return `${bytes}B`;
}

const DURATION_UNITS: readonly [string, number][] = [
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
];

/**
 * Parses a duration into milliseconds: one or more '<number><unit>' parts with
 * units h, m, s, ms, each at most once and largest first ('1h30m', '90s',
 * '250ms'), or a bare '0'. The result must be a whole number of milliseconds.
 */
export function parseDuration(s: string, field: string): number {
  const fail = (): Error =>
    badRequest(
      `invalid duration for ${field}: ${JSON.stringify(s)}`,
      'use a number with a unit h, m, s or ms, e.g. 90s, 5m or 1h30m; 0 disables',
    );
  const text = s.trim();
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;
  let pos = 0;
  let total = 0;
  let lastRank = -1;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m === null || m[1] === undefined || m[2] === undefined) throw fail();
    const unitName = m[2];
    const rank = DURATION_UNITS.findIndex(([u]) => u === unitName);
    const unit = DURATION_UNITS[rank]?.[1];
    if (unit === undefined || rank <= lastRank) throw fail();
    lastRank = rank;
    total += Number(m[1]) * unit;
    pos = re.lastIndex;
  }
  total = snap(total);
  if (pos === 0 || !Number.isSafeInteger(total)) throw fail();
  return total;
}
