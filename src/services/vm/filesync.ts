import { open } from 'node:fs/promises';
import type { AgentClient } from '../../agent/client.js';
import type { VmView } from '../../api/views.js';
import type { ImageRepo } from '../../store/images.js';
import type { VmRepo } from '../../store/vms.js';
import type { Logger, OpContext } from '../context.js';
import { FIRST_AGENT_ASSETS, type VmAgents } from './agent.js';
import { planFileSync, type FileSyncEntry, type SyncFile } from './filesync-plan.js';

/*
 * [[file_sync]] applied: after a create or start brought a VM up, the
 * configured host files are written into the guest through its agent (each
 * one a temporary file renamed over the target: a link already there is
 * replaced, never written through). Best effort: what cannot be copied is a
 * warning (progress line and daemon log), the VM stays up.
 */

export interface FileSyncDeps {
  entries: readonly FileSyncEntry[];
  /** Where `~/` of a host path points. */
  home: string;
  vms: Pick<VmRepo, 'get'>;
  images: Pick<ImageRepo, 'get'>;
  agents: Pick<VmAgents, 'use'>;
  log: Logger;
}

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Reads exactly the planned size (a file that grew is cut there; one that shrank fails). */
async function readPlanned(f: SyncFile): Promise<Buffer> {
  const fh = await open(f.host, 'r');
  try {
    const buf = Buffer.alloc(f.size);
    let off = 0;
    while (off < f.size) {
      const { bytesRead } = await fh.read(buf, off, f.size - off, off);
      if (bytesRead === 0) throw new Error(`${f.host} shrank while it was read`);
      off += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

async function mkdirs(c: AgentClient, dirs: string[]): Promise<string | undefined> {
  if (dirs.length === 0) return undefined;
  const x = c.exec({ argv: ['mkdir', '-p', '-m', '0700', '--', ...dirs], env: { PATH } });
  let err = '';
  const drain = async (s: NodeJS.ReadableStream, keep: boolean): Promise<void> => {
    for await (const chunk of s) if (keep && err.length < 4096) err += String(chunk);
  };
  const [, , st] = await Promise.all([drain(x.stdout, false), drain(x.stderr, true), x.exit]);
  return st.kind === 'exited' && st.code === 0 ? undefined : err.trim() || 'mkdir failed';
}

export class FileSync {
  constructor(private readonly d: FileSyncDeps) {}

  /** After vm.create / vm.start: copies when the VM is running; returns the view unchanged. */
  async afterBoot(view: VmView, ctx: OpContext): Promise<VmView> {
    if (this.d.entries.length === 0 || view.state !== 'running') return view;
    const warn = (message: string): void => {
      ctx.progress({ stage: 'file_sync', message: `warning: ${message}` });
      this.d.log.warn('file_sync', { vm: view.name, message });
    };
    try {
      await this.copy(view, ctx, warn);
    } catch (e) {
      warn(`copying into VM ${view.name} failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    return view;
  }

  private async copy(view: VmView, ctx: OpContext, warn: (m: string) => void): Promise<void> {
    const vm = this.d.vms.get(view.id);
    if (!vm) return;
    const image = this.d.images.get(vm.imageId);
    if (!image || image.assetsVersion < FIRST_AGENT_ASSETS) {
      warn(`VM ${view.name}: its image has no guest agent; [[file_sync]] was not applied (refresh the image)`);
      return;
    }
    const plan = await planFileSync(this.d.entries, this.d.home);
    plan.warnings.forEach(warn);
    if (plan.files.length === 0) return;
    ctx.progress({ stage: 'file_sync', message: `copying ${plan.files.length} file(s) into ${view.name}` });
    await this.d.agents.use(vm, async (c) => {
      const failed = await mkdirs(c, plan.dirs);
      if (failed) warn(`creating ${plan.dirs.join(', ')} in VM ${view.name}: ${failed}`);
      for (const f of plan.files) {
        if (ctx.signal.aborted) return;
        try {
          await c.putFile(f.guest, await readPlanned(f), { mode: f.mode, uid: 0, gid: 0 });
        } catch (e) {
          // Keep the connection for the rest unless it is gone (`use` drops it on a throw).
          if (!c.isOpen) throw e;
          warn(`${f.host} → ${view.name}:${f.guest}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    });
  }
}
