import { posix } from 'node:path';
import { Readable } from 'node:stream';
import type { AgentClient } from '../../agent/client.js';
import { MAX_FILE_BYTES, type GetOutFrame, type PutInFrame, type FileResult } from '../../api/file-contract.js';
import type { Params } from '../../api/methods.js';
import type { StreamChannel } from '../../daemon/stream.js';
import { AppError, cancelled } from '../../errors.js';
import type { ImageRepo } from '../../store/images.js';
import type { VmRepo, VmRow } from '../../store/vms.js';
import type { OpContext } from '../context.js';
import type { VmAgents } from './agent.js';
import { checkAgentVm } from './guestops.js';
import { resolveRef } from './names.js';

/*
 * vm.file_put / vm.file_get: one regular file between the client and a running
 * VM through its guest agent (`banger vm cp` for images without sshd),
 * streamed both ways: nothing holds the whole file.
 */

export interface VmFilesDeps {
  vms: Pick<VmRepo, 'byName' | 'get' | 'list'>;
  images: Pick<ImageRepo, 'get'>;
  agents: Pick<VmAgents, 'use'>;
}

/** The guest path a put writes: into an existing directory (or a path ending in "/") as `name`, like cp. */
export function putTarget(path: string, kind: 'file' | 'missing' | 'other', name: string): string {
  return kind === 'other' || path.endsWith('/') ? posix.join(path, name) : path;
}

/** The hint for a guest path that is not a regular file. */
export function directoryHint(vm: string, path: string): string {
  return `copying directories through the agent is not supported (the image has no sshd): use \`banger vm ssh ${vm} -- tar -C ${path} -cf - . > out.tar\``;
}

/** An agent's error, named by the VM (its message names the path). */
function named(vm: VmRow, path: string, e: unknown): unknown {
  if (!(e instanceof AppError) || !/^agent error/.test(e.detail ?? '')) return e;
  const hint = /is not a regular file/.test(e.message) ? directoryHint(vm.name, path) : e.hint;
  return new AppError(e.code, `VM "${vm.name}": ${e.message}`, {
    ...(hint === undefined ? {} : { hint }),
    ...(e.detail === undefined ? {} : { detail: e.detail }),
  });
}

/** The client's data frames as bytes. */
async function* bytes(ch: StreamChannel<PutInFrame, never>): AsyncGenerator<Buffer> {
  for await (const f of ch.frames()) yield Buffer.from(f.data, 'base64');
}

export class VmFiles {
  constructor(private readonly d: VmFilesDeps) {}

  async put(p: Params<'vm.file_put'>, ctx: OpContext, ch: StreamChannel<PutInFrame, never>): Promise<FileResult> {
    return this.withAgent(p.ref, p.path, ctx, async (c) => {
      const kind = await c.pathKind(p.path);
      const path = putTarget(p.path, kind, p.name);
      // Root-owned, the source's mode; the agent writes a temporary file and renames it over the path.
      await c.putFile(path, Readable.from(bytes(ch)), { mode: p.mode, uid: 0, gid: 0, size: p.size });
      return { path, mode: p.mode, size: p.size };
    });
  }

  async get(p: Params<'vm.file_get'>, ctx: OpContext, ch: StreamChannel<never, GetOutFrame>): Promise<FileResult> {
    return this.withAgent(p.ref, p.path, ctx, async (c) => {
      const info = await c.streamFile(p.path, (chunk) => ch.send({ data: chunk.toString('base64') }), {
        maxBytes: MAX_FILE_BYTES,
        signal: ctx.signal,
      });
      return { path: p.path, mode: info.mode, size: info.size };
    });
  }

  /**
   * Runs fn on the VM's agent connection. Its errors come back as values: `use` drops the VM's
   * connection on a throw, which would end every other session on it for a file that was missing.
   */
  private async withAgent<T>(
    ref: string,
    path: string,
    ctx: OpContext,
    fn: (c: AgentClient) => Promise<T>,
  ): Promise<T> {
    const vm = resolveRef(this.d.vms, ref);
    checkAgentVm(vm, this.d.images.get(vm.imageId), 'copying files');
    if (ctx.signal.aborted) throw cancelled();
    const r = await this.d.agents.use(vm, async (c) => {
      try {
        return { ok: await fn(c) };
      } catch (e) {
        if (!c.isOpen) throw e;
        return { err: e };
      }
    });
    if ('err' in r) throw named(vm, path, r.err);
    return r.ok;
  }
}
