import { randomBytes } from 'node:crypto';
import { alreadyExists, badRequest, operationFailed } from '../errors.js';
import { deriveImageName, isCatalogWord, parseReference } from '../imagepull/reference.js';
import type { OpContext, Logger } from '../services/context.js';
import { installSshd, type GuestResult, type InstallVmOps } from '../services/image/install-run.js';
import { DEFAULT_PATH } from '../services/image/oci-config.js';
import { validateImageName } from '../services/image/files.js';
import type { PullParams } from '../services/image/params.js';
import type { ImageService } from '../services/image/service.js';
import type { VmAgents } from '../services/vm/agent.js';
import type { VmService } from '../services/vm/service.js';
import type { ImageRepo, ImageRow } from '../store/images.js';
import type { VmRepo } from '../store/vms.js';
import type { CommandRunner } from '../system/runner.js';

/*
 * `image pull --install-sshd` (issue 12): the image is pulled under a temporary
 * name, sshd is installed into it in a throwaway VM (install-run.ts), and only
 * then does it get the name asked for; any failure deletes the VM and the
 * temporary image, so no row, disk, process or half-made image is left.
 */

/** Bytes kept of each output stream of a guest command. */
const MAX_OUTPUT = 64 * 1024;

export interface SshdPullDeps {
  images: Pick<ImageService, 'pull' | 'find' | 'delete'>;
  repo: Pick<ImageRepo, 'rename' | 'get'>;
  vms: Pick<VmService, 'create' | 'stop' | 'delete' | 'resolve'>;
  vmRepo: Pick<VmRepo, 'byName'>;
  agents: Pick<VmAgents, 'use'>;
  runner: CommandRunner;
  log: Logger;
  /** Refuses when the guest's package manager could reach no mirror (install-sshd.ts checkEgress). */
  checkEgress: () => Promise<void>;
  /** The throwaway VM's outbound network: true, except in the test-only config test_install_sshd_offline. */
  allowOutbound: boolean;
}

/** Runs argv in a VM through its agent: bounded output, killed after timeoutMs. */
async function agentExec(
  d: SshdPullDeps,
  vmName: string,
  argv: string[],
  timeoutMs: number,
  signal: AbortSignal,
): Promise<GuestResult> {
  const vm = d.vms.resolve(vmName);
  return d.agents.use(vm, async (c) => {
    const x = c.exec({ argv, env: { PATH: DEFAULT_PATH, HOME: '/root', DEBIAN_FRONTEND: 'noninteractive' } });
    const collect = async (s: NodeJS.ReadableStream): Promise<string> => {
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const chunk of s) {
        const b = chunk as Buffer;
        if (n < MAX_OUTPUT) chunks.push(b.subarray(0, MAX_OUTPUT - n));
        n += b.length;
      }
      return Buffer.concat(chunks).toString('utf8');
    };
    const kill = (): void => x.abort();
    const timer = setTimeout(kill, timeoutMs);
    signal.addEventListener('abort', kill, { once: true });
    try {
      const [stdout, stderr, status] = await Promise.all([collect(x.stdout), collect(x.stderr), x.exit]);
      if (signal.aborted) throw operationFailed(`the command in VM ${vmName} was cancelled`);
      return { code: status.kind === 'exited' ? status.code : null, stdout, stderr };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', kill);
    }
  });
}

export function installVmOps(d: SshdPullDeps): InstallVmOps {
  return {
    create: async (image, vmName, ctx) => {
      await d.vms.create({ name: vmName, image, nat: d.allowOutbound, start: true }, ctx);
    },
    exec: (vmName, argv, timeoutMs, signal) => agentExec(d, vmName, argv, timeoutMs, signal),
    stop: async (vmName, ctx) => {
      await d.vms.stop(vmName, ctx);
    },
    rootDisk: (vmName) => {
      const vm = d.vms.resolve(vmName);
      if (vm.rootDisk === undefined) throw operationFailed(`VM ${vmName} has no recorded root disk`);
      return { path: vm.rootDisk.path, format: vm.rootDisk.strategy === 'qcow2-overlay' ? 'qcow2' : 'raw' };
    },
    delete: async (vmName, ctx) => {
      if (d.vmRepo.byName(vmName) === undefined) return;
      await d.vms.delete(vmName, ctx);
    },
  };
}

/** The name the image gets: --name, else the one an OCI reference implies (bundles and catalog names need --name). */
function finalName(p: PullParams): string {
  if (p.name !== undefined) return p.name;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p.ref) || isCatalogWord(p.ref))
    throw badRequest(`--install-sshd with ${p.ref} needs --name`, 'pass --name NAME for the image it makes');
  return deriveImageName(parseReference(p.ref));
}

export async function pullWithSshd(d: SshdPullDeps, p: PullParams, ctx: OpContext): Promise<ImageRow> {
  const name = finalName(p);
  validateImageName(name);
  const taken = (): void => {
    if (d.images.find(name))
      throw alreadyExists(`image "${name}" already exists`, 'pass --name to pull it under another name');
  };
  taken();
  await d.checkEgress();
  const tmp = `${name.slice(0, 40)}.install-${randomBytes(4).toString('hex')}`;
  const row = await d.images.pull({ ...p, install_sshd: undefined, name: tmp }, ctx);
  try {
    await installSshd({ vms: installVmOps(d), runner: d.runner, log: d.log }, row, ctx);
    taken();
    d.repo.rename(row.id, name);
    return d.repo.get(row.id) ?? { ...row, name };
  } catch (e) {
    await d.images
      .delete(tmp)
      .catch((err: unknown) =>
        d.log.error('could not delete the image of a failed --install-sshd pull', { image: tmp, error: String(err) }),
      );
    throw e;
  }
}
