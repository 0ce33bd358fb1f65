import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TemplateView } from '../../api/views.js';
import { templateFiles, vmFiles, type Paths } from '../../system/paths.js';
import type { Logger } from '../context.js';
import { ensureDir, exists, removeTree } from '../fsutil.js';

/* Warm-start templates on disk (issue 17): templates/<key>/ holds the saved guest (state.bin: its
   devices; ram.bin: its memory, a sparse file), its
   root layer (root.qcow2, over the image's rootfs), its work disk and template.json. A template
   serves restores while its state file is there; superseding it removes that file at once, and
   the dir (the root layer VMs' overlays stand on) goes when no VM refers to it any more. */

export interface TemplateMeta {
  key: string;
  image_id: string;
  image_name: string;
  vcpu: number;
  memory_mib: number;
  disk_bytes: number;
  overlay_bytes: number;
  created_at: string;
}

export interface Template {
  key: string;
  dir: string;
  meta: TemplateMeta;
  /** The saved guest; undefined once superseded. */
  state: string | undefined;
  /** The guest's memory (a file qemu maps shared; the state then holds the devices only). */
  ram: string | undefined;
  root: string;
  work: string;
}

const MAX_META_BYTES = 64 * 1024;

export class TemplateStore {
  constructor(
    private readonly paths: Paths,
    private readonly log: Logger,
  ) {}

  /** Every template on disk, serving or not; unreadable dirs are skipped with a warning. */
  async list(): Promise<Template[]> {
    let names: string[];
    try {
      names = await readdir(this.paths.templatesDir);
    } catch {
      return [];
    }
    const out: Template[] = [];
    for (const key of names.sort()) {
      const t = await this.read(key);
      if (t) out.push(t);
    }
    return out;
  }

  /** The template of `key` when it serves restores (its state file is there). */
  async current(key: string): Promise<Template | undefined> {
    const t = await this.read(key);
    return t?.state ? t : undefined;
  }

  /**
   * Moves a finished build (`from`, holding root.qcow2, the work disk and state.bin) into place
   * under `meta.key`, writing template.json last before the rename; templates of the same image and
   * spec under other keys are superseded.
   */
  async install(from: string, meta: TemplateMeta, refs: ReadonlySet<string>): Promise<Template> {
    await writeFile(join(from, templateFiles.meta), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o600 });
    await ensureDir(this.paths.templatesDir);
    const dir = this.paths.templateDir(meta.key);
    await removeTree(dir);
    await rename(from, dir);
    for (const t of await this.list()) {
      const m = t.meta;
      const sameSpec =
        m.image_id === meta.image_id &&
        m.vcpu === meta.vcpu &&
        m.memory_mib === meta.memory_mib &&
        m.disk_bytes === meta.disk_bytes &&
        m.overlay_bytes === meta.overlay_bytes;
      if (t.key !== meta.key && sameSpec) await this.supersede(t, refs);
    }
    const t = await this.read(meta.key);
    if (!t) throw new Error(`template ${meta.key} vanished while installed`);
    return t;
  }

  /** Stops `t` serving (its state and memory go now) and removes its dir unless a VM stands on its root layer. */
  async supersede(t: Template, refs: ReadonlySet<string>): Promise<void> {
    await rm(join(t.dir, templateFiles.state), { force: true });
    await rm(join(t.dir, templateFiles.ram), { force: true });
    if (!refs.has(t.key)) await removeTree(t.dir);
    this.log.info('template superseded', { key: t.key, image: t.meta.image_name });
  }

  /** Every template of an image stops serving; those no VM stands on go (image delete). */
  async removeForImage(imageId: string, refs: ReadonlySet<string>): Promise<void> {
    for (const t of await this.list()) if (t.meta.image_id === imageId) await this.supersede(t, refs);
  }

  /** Removes superseded templates no VM refers to any more (after a VM delete). */
  async collect(refs: ReadonlySet<string>): Promise<void> {
    for (const t of await this.list()) if (!t.state && !refs.has(t.key)) await removeTree(t.dir);
  }

  private async read(key: string): Promise<Template | undefined> {
    if (!/^[0-9a-f]{16,64}$/.test(key)) return undefined;
    const dir = this.paths.templateDir(key);
    const metaPath = join(dir, templateFiles.meta);
    try {
      const st = await stat(metaPath);
      if (!st.isFile() || st.size > MAX_META_BYTES) throw new Error('not a regular file of at most 64 KiB');
      const meta = JSON.parse(await readFile(metaPath, 'utf8')) as TemplateMeta;
      if (meta.key !== key) throw new Error(`it names key ${String(meta.key)}`);
      const state = join(dir, templateFiles.state);
      const ram = join(dir, templateFiles.ram);
      return {
        key,
        dir,
        meta,
        state: (await exists(state)) ? state : undefined,
        ram: (await exists(ram)) ? ram : undefined,
        root: join(dir, vmFiles.rootQcow2),
        work: join(dir, vmFiles.work),
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn('ignoring an unreadable template', { dir, error: String(e) });
      return undefined;
    }
  }
}

/** A template as `image show` lists it. */
export function templateView(t: Template): TemplateView {
  return {
    key: t.key,
    serving: t.state !== undefined,
    vcpu: t.meta.vcpu,
    memory_mib: t.meta.memory_mib,
    disk_bytes: t.meta.disk_bytes,
    created_at: t.meta.created_at,
  };
}
