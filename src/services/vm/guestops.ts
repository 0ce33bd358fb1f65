import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmHealth, VmPort, VmPorts } from '../../api/methods.js';
import type { ListeningPort } from '../../agent/payloads.js';
import { precondition } from '../../errors.js';
import type { ImageRow } from '../../store/images.js';
import type { VmRow } from '../../store/vms.js';
import { imageFiles } from '../../system/paths.js';
import type { GuestNet } from '../../vmm/driver.js';
import type { Logger } from '../context.js';
import { FIRST_AGENT_ASSETS, ORDERLY_SHUTDOWN_ASSETS, type VmAgents } from './agent.js';
import type { GuestTraits } from './boot.js';
import type { Publication } from './portspec.js';
import { publishedView } from './publish.js';
import { notRunning } from './states.js';

/* What the guest agent answers about a running VM: health and listening ports. */

const MAX_MANIFEST_BYTES = 1 << 20;

/**
 * What a VM's image gives its guest: the agent (guest assets v3 and later)
 * and sshd (`has_sshd` in the image's manifest.json; images from before the
 * field all had sshd, the pull refused the rest).
 */
export async function guestTraits(image: ImageRow | undefined, log: Logger): Promise<GuestTraits> {
  if (!image) return { agent: false, sshd: true, orderlyShutdown: false };
  const agent = image.assetsVersion >= FIRST_AGENT_ASSETS;
  const orderlyShutdown = image.assetsVersion >= ORDERLY_SHUTDOWN_ASSETS;
  const file = join(image.dir, imageFiles.manifest);
  try {
    const st = await stat(file);
    if (!st.isFile() || st.size > MAX_MANIFEST_BYTES) throw new Error(`not a regular file of at most 1 MiB`);
    const m = JSON.parse(await readFile(file, 'utf8')) as { has_sshd?: unknown };
    return { agent, sshd: typeof m.has_sshd === 'boolean' ? m.has_sshd : true, orderlyShutdown };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      log.warn('cannot read the image manifest; assuming the image has sshd', { file, error: String(e) });
    return { agent, sshd: true, orderlyShutdown };
  }
}

/** Refuses a VM that is not running, or whose image has no agent, with what to do. */
export function checkAgentVm(vm: VmRow, image: ImageRow | undefined, what: string): void {
  if (vm.state !== 'running') throw notRunning(vm, what);
  if (!image || image.assetsVersion < FIRST_AGENT_ASSETS) {
    const name = image?.name ?? vm.imageId;
    throw precondition(
      `the image "${name}" of VM "${vm.name}" has guest assets v${image?.assetsVersion ?? '?'}, older than the guest agent (v${FIRST_AGENT_ASSETS}); ${what} needs the agent`,
      `refresh the image (\`banger image refresh ${name}\`) or pull it again, then recreate the VM`,
    );
  }
}

export async function vmHealth(vm: VmRow, agents: VmAgents): Promise<VmHealth> {
  const { h, version } = await agents.use(vm, async (c) => ({ h: await c.health(), version: c.agent.version }));
  return {
    name: vm.name,
    healthy: true,
    agent: h.name,
    protocol_version: version,
    uptime_s: h.uptimeMs / 1000,
    sessions: h.sessions,
  };
}

const WILDCARD = new Set(['0.0.0.0', '::']);

/**
 * Where the host reaches a guest socket: in user mode only the ssh forward
 * exists (host 127.0.0.1:<sshPort> → guest port 22), and it reaches a TCP
 * listener on port 22 bound to every address or to the guest's own.
 */
export function portEndpoint(
  p: ListeningPort,
  vm: Pick<VmRow, 'networkMode' | 'name' | 'sshPort'>,
  net: GuestNet | undefined,
  published: readonly Publication[] = [],
): string | null {
  if (vm.networkMode !== 'user') return `${vm.name}.vm:${p.port}`;
  const guestIp = net?.guestIp.split('/')[0];
  const reachable = WILDCARD.has(p.address) || (guestIp !== undefined && p.address === guestIp);
  if (!reachable) return null;
  if (p.protocol === 'tcp' && p.port === 22 && vm.sshPort !== undefined) return `127.0.0.1:${vm.sshPort}`;
  const pub = published.find((x) => x.protocol === p.protocol && x.guestPort === p.port);
  return pub ? `${pub.address}:${pub.hostPort}` : null;
}

export async function vmPorts(
  vm: VmRow,
  agents: VmAgents,
  net: GuestNet | undefined,
  published: readonly Publication[] = [],
): Promise<VmPorts> {
  const r = await agents.ports(vm);
  const ports: VmPort[] = r.ports
    .map((p) => ({
      protocol: p.protocol,
      address: p.address,
      port: p.port,
      uid: p.uid,
      endpoint: portEndpoint(p, vm, net, published),
    }))
    .sort((a, b) => a.protocol.localeCompare(b.protocol) || a.port - b.port || a.address.localeCompare(b.address));
  return { name: vm.name, ports, published: published.map(publishedView), truncated: r.truncated };
}
