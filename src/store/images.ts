import type { Db } from './db.js';

export interface ImageRow {
  id: string;
  name: string;
  source: string;
  managed: boolean;
  dir: string;
  rootfsPath: string;
  workSeedPath: string | undefined;
  kernelName: string;
  distro: string;
  sizeBytes: number;
  assetsVersion: number;
  createdAt: string;
}

type Raw = {
  id: string;
  name: string;
  source: string;
  managed: number;
  dir: string;
  rootfs_path: string;
  work_seed_path: string | null;
  kernel_name: string;
  distro: string;
  size_bytes: number;
  assets_version: number;
  created_at: string;
};

const fromRaw = (r: Raw): ImageRow => ({
  id: r.id,
  name: r.name,
  source: r.source,
  managed: r.managed === 1,
  dir: r.dir,
  rootfsPath: r.rootfs_path,
  workSeedPath: r.work_seed_path ?? undefined,
  kernelName: r.kernel_name,
  distro: r.distro,
  sizeBytes: r.size_bytes,
  assetsVersion: r.assets_version,
  createdAt: r.created_at,
});

export class ImageRepo {
  constructor(private readonly db: Db) {}

  get(id: string): ImageRow | undefined {
    const r = this.db.prepare('SELECT * FROM images WHERE id = ?').get(id) as Raw | undefined;
    return r && fromRaw(r);
  }

  byName(name: string): ImageRow | undefined {
    const r = this.db.prepare('SELECT * FROM images WHERE name = ?').get(name) as Raw | undefined;
    return r && fromRaw(r);
  }

  list(): ImageRow[] {
    return (this.db.prepare('SELECT * FROM images ORDER BY name').all() as Raw[]).map(fromRaw);
  }

  insert(i: ImageRow): void {
    this.db
      .prepare(
        `INSERT INTO images (id, name, source, managed, dir, rootfs_path, work_seed_path, kernel_name, distro, size_bytes, assets_version, created_at)
         VALUES (@id, @name, @source, @managed, @dir, @rootfs_path, @work_seed_path, @kernel_name, @distro, @size_bytes, @assets_version, @created_at)`,
      )
      .run({
        id: i.id,
        name: i.name,
        source: i.source,
        managed: i.managed ? 1 : 0,
        dir: i.dir,
        rootfs_path: i.rootfsPath,
        work_seed_path: i.workSeedPath ?? null,
        kernel_name: i.kernelName,
        distro: i.distro,
        size_bytes: i.sizeBytes,
        assets_version: i.assetsVersion,
        created_at: i.createdAt,
      });
  }

  setFiles(
    id: string,
    f: { managed: boolean; rootfsPath: string; workSeedPath: string | undefined; source: string },
  ): void {
    this.db
      .prepare('UPDATE images SET managed = ?, rootfs_path = ?, work_seed_path = ?, source = ? WHERE id = ?')
      .run(f.managed ? 1 : 0, f.rootfsPath, f.workSeedPath ?? null, f.source, id);
  }

  /** Gives an image its final name (`image pull --install-sshd` works under a temporary one). */
  rename(id: string, name: string): void {
    this.db.prepare('UPDATE images SET name = ? WHERE id = ?').run(name, id);
  }

  /** After `image refresh`: the guest-assets version now in the rootfs. */
  setAssetsVersion(id: string, version: number): void {
    this.db.prepare('UPDATE images SET assets_version = ? WHERE id = ?').run(version, id);
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM images WHERE id = ?').run(id);
  }
}
