import type { Db } from './db.js';

export interface KernelRow {
  name: string;
  distro: string;
  arch: string;
  version: string;
  format: 'bzImage' | 'elf';
  source: string;
  sha256: string;
  dir: string;
  hasInitrd: boolean;
  hasModules: boolean;
  moduleCount: number;
  /** Which VMMs can boot it: format details and virtio-mmio support (kernel/compat.ts). */
  traits: { pvhNote?: boolean; virtioMmio?: 'builtin' | 'module' | 'absent' | 'unknown' };
  createdAt: string;
}

type Raw = {
  name: string;
  distro: string;
  arch: string;
  version: string;
  format: string;
  source: string;
  sha256: string;
  dir: string;
  has_initrd: number;
  has_modules: number;
  module_count: number;
  created_at: string;
  traits: string;
};

function parseTraits(text: string): KernelRow['traits'] {
  try {
    return JSON.parse(text) as KernelRow['traits'];
  } catch {
    return {};
  }
}

const fromRaw = (r: Raw): KernelRow => ({
  name: r.name,
  distro: r.distro,
  arch: r.arch,
  version: r.version,
  format: r.format as KernelRow['format'],
  source: r.source,
  sha256: r.sha256,
  dir: r.dir,
  hasInitrd: r.has_initrd === 1,
  hasModules: r.has_modules === 1,
  moduleCount: r.module_count,
  traits: parseTraits(r.traits),
  createdAt: r.created_at,
});

export class KernelRepo {
  constructor(private readonly db: Db) {}

  get(name: string): KernelRow | undefined {
    const r = this.db.prepare('SELECT * FROM kernels WHERE name = ?').get(name) as Raw | undefined;
    return r && fromRaw(r);
  }

  list(): KernelRow[] {
    return (this.db.prepare('SELECT * FROM kernels ORDER BY name').all() as Raw[]).map(fromRaw);
  }

  insert(k: KernelRow): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO kernels (name, distro, arch, version, format, source, sha256, dir, has_initrd, has_modules, module_count, traits, created_at)
         VALUES (@name, @distro, @arch, @version, @format, @source, @sha256, @dir, @has_initrd, @has_modules, @module_count, @traits, @created_at)`,
      )
      .run({
        name: k.name,
        distro: k.distro,
        arch: k.arch,
        version: k.version,
        format: k.format,
        source: k.source,
        sha256: k.sha256,
        dir: k.dir,
        has_initrd: k.hasInitrd ? 1 : 0,
        has_modules: k.hasModules ? 1 : 0,
        module_count: k.moduleCount,
        traits: JSON.stringify(k.traits),
        created_at: k.createdAt,
      });
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM kernels WHERE name = ?').run(name);
  }
}
