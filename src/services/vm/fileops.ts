import type { AgentClient } from '../../agent/client.js';
import type { FsReadResult, FsWriteResult } from '../../api/proc-contract.js';
import { MAX_FS_READ_BYTES } from '../../api/proc-contract.js';
import type { Params } from '../../api/methods.js';
import { AppError, cancelled } from '../../errors.js';
import type { ImageRepo } from '../../store/images.js';
import type { VmRepo } from '../../store/vms.js';
import type { OpContext } from '../context.js';
import type { VmAgents } from './agent.js';
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

  private async with<T>(ref: string, ctx: OpContext, fn: (c: AgentClient) => Promise<T>): Promise<T> {
    const vm = resolveRef(this.d.vms, ref);
    checkAgentVm(vm, this.d.images.get(vm.imageId), 'reading and writing files');
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
