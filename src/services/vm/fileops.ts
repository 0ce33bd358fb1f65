import type { AgentClient } from '../../agent/client.js';
import type { DirEntry } from '../../agent/payloads.js';
import type { FsEntry, FsListResult, FsReadResult, FsWriteResult } from '../../api/proc-contract.js';
import { DEFAULT_FS_LIST_ENTRIES, MAX_FS_READ_BYTES } from '../../api/proc-contract.js';
import type { Params } from '../../api/methods.js';
import { AppError, badRequest, cancelled, notFound, precondition } from '../../errors.js';
import type { ImageRepo } from '../../store/images.js';
import type { VmRepo } from '../../store/vms.js';
import type { OpContext } from '../context.js';
import { FILE_LIST_ASSETS, type VmAgents } from './agent.js';
import { checkAgentVm } from './guestops.js';
import { resolveRef } from './names.js';

/*
 * fs.read / fs.write: whole small files of a running VM through its agent, in
 * one unary call each (the SDK's vm.files; vm.file_get/put stream large ones).
 */

export interface VmFileOpsDeps {
  vms: Pick<VmRepo, 'byName' | 'get' | 'list' | 'touch'>;
  images: Pick<ImageRepo, 'get'>;
  agents: Pick<VmAgents, 'use'>;
}

export class VmFileOps {
  constructor(private readonly d: VmFileOpsDeps) {}

  read(p: Params<'fs.read'>, ctx: OpContext): Promise<FsReadResult> {
    return this.with(p.ref, ctx, async (c) => {
      const { data, info } = await c.getFile(p.path, { maxBytes: p.max_bytes ?? MAX_FS_READ_BYTES });
      return { path: p.path, data: data.toString('base64'), mode: info.mode & 0o7777, size: data.length };
    });
  }

  write(p: Params<'fs.write'>, ctx: OpContext): Promise<FsWriteResult> {
    return this.with(p.ref, ctx, async (c) => {
      const data = Buffer.from(p.data, 'base64');
      const mode = p.mode ?? 0o644;
      await c.putFile(p.path, data, { mode, uid: 0, gid: 0 });
      return { path: p.path, size: data.length, mode };
    });
  }

  list(p: Params<'fs.list'>, ctx: OpContext): Promise<FsListResult> {
    return this.with(
      p.ref,
      ctx,
      async (c) => {
        try {
          const r = await c.listDir(p.path, p.max_entries ?? DEFAULT_FS_LIST_ENTRIES);
          return listResult(p.path, r.entries, r.truncated);
        } catch (e) {
          throw listError(p.path, e);
        }
      },
      FILE_LIST_ASSETS,
    );
  }

  private async with<T>(ref: string, ctx: OpContext, fn: (c: AgentClient) => Promise<T>, minAssets = 0): Promise<T> {
    const vm = resolveRef(this.d.vms, ref);
    const image = this.d.images.get(vm.imageId);
    checkAgentVm(vm, image, 'reading and writing files');
    if (image && image.assetsVersion < minAssets)
      throw precondition(
        `the image "${image.name}" of VM "${vm.name}" has guest assets v${image.assetsVersion}; listing a directory needs v${minAssets}`,
        `refresh the image (\`banger image refresh ${image.name}\`), then recreate the VM`,
      );
    if (ctx.signal.aborted) throw cancelled();
    this.d.vms.touch(vm.id);
    const r = await this.d.agents.use(vm, async (c) => {
      try {
        return { ok: await fn(c) };
      } catch (e) {
        if (!c.isOpen) throw e;
        return { err: e };
      }
    });
    if ('err' in r) {
      const e = r.err;
      if (e instanceof AppError)
        throw new AppError(e.code, `VM "${vm.name}": ${e.message}`, e.hint ? { hint: e.hint } : {});
      throw e;
    }
    return r.ok;
  }
}

/** The agent's entries as fs.list answers them: sorted by name, with full paths. Pure. */
export function listResult(dir: string, entries: readonly DirEntry[], truncated: boolean): FsListResult {
  const base = dir.endsWith('/') ? dir : `${dir}/`;
  const out: FsEntry[] = [...entries]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((e) => ({
      name: e.name,
      path: base + e.name,
      type: e.kind,
      mode: e.mode,
      size: e.size,
      mtime: new Date(Math.max(-8.64e15, Math.min(8.64e15, e.mtimeS * 1000))).toISOString(),
    }));
  return { path: dir, entries: out, truncated };
}

/** An agent ERROR for FILE_LIST as the typed error a caller can act on. Pure. */
export function listError(path: string, e: unknown): unknown {
  if (!(e instanceof AppError)) return e;
  const detail = e.detail ?? '';
  if (/agent error unknown_type/.test(detail))
    return precondition(
      `the guest agent cannot list directories (${path})`,
      'refresh the image (`banger image refresh <image>`), then recreate the VM',
    );
  if (/\(errno 2\)/.test(detail)) return notFound(`guest path ${path} does not exist`);
  if (/\(errno 20\)/.test(detail)) return badRequest(`guest path ${path} is not a directory`, 'fs.read reads a file');
  return e;
}
