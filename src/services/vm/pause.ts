import type { VmView } from '../../api/views.js';
import { AppError, operationFailed, precondition } from '../../errors.js';
import type { ImageRepo } from '../../store/images.js';
import type { VmRepo, VmRow } from '../../store/vms.js';
import type { VmmDriver } from '../../vmm/driver.js';
import type { Logger } from '../context.js';
import type { VmAgents } from './agent.js';
import { DEFAULT_PATH } from '../image/oci-config.js';
import { guestTraits } from './guestops.js';
import { vmmHandles } from './runtime.js';
import { transition } from './states.js';

/*
 * vm pause / vm resume: the VMM stops the guest's vCPUs (QMP `stop`, firecracker
 * PATCH /vm) and keeps its process, memory and devices; resume lets them run
 * again and sets the guest clock, which stood still while paused (TCG counts
 * guest time only while the vCPUs run).
 */

/** How long the guest may take to set its clock after a resume. */
const CLOCK_SYNC_TIMEOUT_MS = 10_000;

/** The guest command that sets its clock to the host's `nowMs` (GNU and busybox date both take `@seconds`). */
export function clockArgv(nowMs: number): string[] {
  return ['date', '-u', '-s', `@${Math.round(nowMs / 1000)}`];
}

export interface PauseDeps {
  vms: Pick<VmRepo, 'get' | 'setState'>;
  driver: VmmDriver;
  agents: Pick<VmAgents, 'use'>;
  log: Logger;
  resolve(ref: string): VmRow;
  lock<T>(id: string, fn: () => Promise<T>): Promise<T>;
  images: Pick<ImageRepo, 'get'>;
  view(vm: VmRow): VmView;
  /** The host clock the guest is set to; tests pass a fixed one. */
  now?: () => number;
}

export class VmPauser {
  constructor(private readonly d: PauseDeps) {}

  /** Stops the vCPUs of a running VM; only a running VM can be paused. */
  async pause(ref: string): Promise<VmView> {
    const vm = this.d.resolve(ref);
    return this.d.lock(vm.id, async () => {
      const cur = this.get(vm.id);
      if (cur.state !== 'running' || !cur.handles)
        throw precondition(
          `VM "${cur.name}" is ${cur.state}; only a running VM can be paused`,
          cur.state === 'paused' ? `it is paused already; \`banger vm resume ${cur.name}\` resumes it` : undefined,
        );
      await this.d.driver.pause(vmmHandles(cur.handles));
      // A daemon killed between the two finds the VMM paused: reconcile reads its run state.
      transition(this.d.vms, cur.id, 'paused');
      this.d.log.info('VM paused', { name: cur.name });
      return this.d.view(this.get(cur.id));
    });
  }

  /** Lets a paused VM run again and sets its clock to the host's. */
  async resume(ref: string): Promise<VmView> {
    const vm = this.d.resolve(ref);
    return this.d.lock(vm.id, async () => {
      const cur = this.get(vm.id);
      if (cur.state !== 'paused' || !cur.handles)
        throw precondition(
          `VM "${cur.name}" is ${cur.state}; only a paused VM can be resumed`,
          cur.state === 'running' ? undefined : `start it with \`banger vm start ${cur.name}\``,
        );
      await this.d.driver.resume(vmmHandles(cur.handles));
      transition(this.d.vms, cur.id, 'running');
      this.d.log.info('VM resumed', { name: cur.name });
      await this.syncClock(cur).catch((e: unknown) =>
        this.d.log.warn('cannot set the guest clock after resume', { name: cur.name, error: String(e) }),
      );
      return this.d.view(this.get(cur.id));
    });
  }

  /**
   * `vm stop` of a paused VM (under the VM's lock): the vCPUs run again first,
   * so the guest can flush its page cache and power off as any stop does
   * (within the same grace, then killed). A frozen guest would only ever be
   * killed, losing what it had not written yet. False when the VMM did not take
   * the `cont`: then the stop kills it without waiting for the guest.
   */
  async thaw(vm: VmRow): Promise<boolean> {
    if (!vm.handles) return false;
    try {
      await this.d.driver.resume(vmmHandles(vm.handles));
      return true;
    } catch (e) {
      this.d.log.warn('cannot resume a paused VM before stopping it; killing it', { name: vm.name, error: String(e) });
      return false;
    }
  }

  /** `date -s` through the guest agent (nothing to do without one: such a guest keeps its clock). */
  async syncClock(vm: VmRow): Promise<void> {
    if (!(await guestTraits(this.d.images.get(vm.imageId), this.d.log)).agent) return;
    const argv = clockArgv((this.d.now ?? Date.now)());
    const status = await this.d.agents.use(vm, async (c) => {
      const e = c.exec({ argv, env: { PATH: DEFAULT_PATH } });
      e.stdout.resume();
      e.stderr.resume();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_r, reject) => {
        timer = setTimeout(() => {
          e.abort();
          reject(operationFailed(`${argv.join(' ')} did not end within ${CLOCK_SYNC_TIMEOUT_MS} ms`));
        }, CLOCK_SYNC_TIMEOUT_MS);
      });
      try {
        return await Promise.race([e.exit, late]);
      } finally {
        clearTimeout(timer);
      }
    });
    if (status.kind !== 'exited' || status.code !== 0)
      throw operationFailed(`${argv.join(' ')} failed in the guest (${JSON.stringify(status)})`);
  }

  private get(id: string): VmRow {
    const vm = this.d.vms.get(id);
    if (!vm) throw new AppError('not_found', `VM ${id} disappeared`);
    return vm;
  }
}
