import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SshInfo } from '../../api/methods.js';
import { precondition } from '../../errors.js';
import { bootArgs, DISK_SERIALS, macFromId } from '../../guest/bootargs.js';
import { sshArgv } from '../../ssh/argv.js';
import type { PortRepo } from '../../store/ports.js';
import type { VmHandles, VmRow } from '../../store/vms.js';
import type { ListeningPort } from '../../agent/payloads-ports.js';
import { readSshBanner, freeLoopbackPort } from '../../system/net.js';
import { vmFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import {
  PortInUse,
  type DiskSpec,
  type GuestNet,
  type VmmDriver,
  type VmmHandles,
  type VmmSpec,
} from '../../vmm/driver.js';
import type { Logger, OpContext } from '../context.js';
import { removeTree } from '../fsutil.js';
import type { KernelFiles } from '../kernel/manifest.js';
import { agentHint, type VmAgents } from './agent.js';
import { BootFailure, consoleTail, waitForSsh } from './bootwatch.js';
import { previousLog } from './console.js';
import type { RootDisk } from './disks.js';
import type { RuntimeFiles } from './runtime.js';
import { parseHostPubKey, type SshKeys } from './sshkeys.js';
import { mark, timed } from './spans.js';
import type { BridgedGuest } from './vmnet.js';

/** How many ssh ports a start tries when the one it picked was taken before the VMM bound it. */
const SSH_PORT_ATTEMPTS = 3;

const STALL_MS = 30_000;
/** How often the boot watch probes sshd: each probe is one loopback connect (the bare boot's loop: 250 ms). */
const SSH_POLL_MS = 250;
/** The host key the bootstrap makes (guest/assets.ts; the sshd drop-in names only this one). */
const GUEST_HOST_KEY_PUB = '/etc/ssh/ssh_host_ed25519_key.pub';
/** How long one probe waits for the banner of an sshd that accepted its connection. */
const SSH_BANNER_WAIT_MS = 20_000;
const STOP_GRACE_MS = 10_000;
/** sshd's port inside the guest (user mode forwards the VM's ssh port to it; bridge mode dials it). */
const GUEST_SSH_PORT = 22;

/** What the guest of a boot has: the agent (guest assets v3 and later) and sshd. */
export interface GuestTraits {
  agent: boolean;
  sshd: boolean;
  /** The agent's SHUTDOWN unmounts before powering off (v4 and later); a v3 agent's leaves journals to replay. */
  orderlyShutdown: boolean;
}

/** Wall-clock time and sleeping, as the graceful stop uses them. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

export interface BootDeps {
  paths: Paths;
  driver: VmmDriver;
  runner: CommandRunner;
  runtime: RuntimeFiles;
  agents: VmAgents;
  log: Logger;
  sshWaitTimeoutMs: number;
  tscKhz: number | undefined;
  /** How readiness is probed; the default reads the sshd banner (probeSshBanner). */
  sshProbe?: ((info: SshInfo, signal: AbortSignal) => Promise<'none' | 'banner' | 'ready'>) | undefined;
  stallMs?: number | undefined;
  /** How long a graceful stop waits for the VMM to exit before killing it (SPEC §4: 10 s). */
  stopGraceMs?: number | undefined;
  clock?: Clock | undefined;
  /** known_hosts: the guest's host key is recorded once sshd is up (read through the agent). */
  keys?: Pick<SshKeys, 'learn'> | undefined;
  /** Test-only (config test_template_boot): boot as a template (sshd waits at the gate), ready once the agent answers. */
  templateBoot?: boolean | undefined;
  /** Published ports: a user-mode VM's VMM forwards them from boot (publish.ts). */
  ports?: Pick<PortRepo, 'list'> | undefined;
}

/** The guest's addresses on the user-mode network the VMM declares, or why this VMM cannot give one. */
export function userNet(driver: VmmDriver): GuestNet | undefined {
  return driver.capabilities.networks.find((n) => n.mode === 'user')?.addresses;
}

/**
 * One boot of a VM: the VMM started on a free ssh port (retried when another
 * process took it first), then the wait until the guest answers over ssh.
 * State changes are the lifecycle's; this only boots.
 */
export class VmBoot {
  constructor(private readonly d: BootDeps) {}

  /**
   * Starts the VMM. `onSpawn` gets the handles the moment the process exists,
   * before the VMM opens its control socket (see VmmDriver.start). `bridged`:
   * the guest is on the bridge with this address and tap (ssh at its port 22).
   */
  async spawn(
    vm: VmRow,
    root: RootDisk,
    k: KernelFiles,
    ctx: OpContext,
    bridged: BridgedGuest | undefined,
    onSpawn: (h: VmHandles) => Promise<void>,
    /** incoming: the VMM waits for a saved guest (warm start); template: the guest boots as a template. */
    opts: { incoming?: boolean; template?: boolean; memoryFile?: string | undefined } = {},
  ): Promise<{ handles: VmHandles; sshPort: number }> {
    const user = userNet(this.d.driver);
    const net = bridged ? { guestIp: bridged.ip, gateway: bridged.gateway, dns: bridged.dns } : user;
    if (!net)
      throw precondition(
        `vmm = "${this.d.driver.kind}" has no user-mode network, which VM "${vm.name}" uses`,
        'set vmm = "auto" or "qemu" in config.toml',
      );
    const dir = this.d.paths.vmDir(vm.id);
    const consoleLog = join(dir, vmFiles.console);
    // A fresh boot starts a fresh log.
    await writeFile(consoleLog, '');
    await removeTree(previousLog(consoleLog));
    const disks: DiskSpec[] = [
      { id: 'root', path: root.path, format: root.format, readonly: false, serial: DISK_SERIALS.root },
      { id: 'work', path: join(dir, vmFiles.work), format: 'raw', readonly: false, serial: DISK_SERIALS.work },
    ];
    if (k.modulesDisk)
      disks.push({ id: 'modules', path: k.modulesDisk, format: 'raw', readonly: true, serial: DISK_SERIALS.modules });
    const mac = macFromId(vm.id);
    const cmdline = bootArgs({
      hostname: vm.name,
      ip: net.guestIp,
      gateway: net.gateway,
      dns: net.dns,
      mac,
      hasModulesDisk: k.modulesDisk !== undefined,
      rootByDevice: k.manifest.initrd !== 'banger',
      tscKhz: vm.accel === 'tcg' ? this.d.tscKhz : undefined,
      template: opts.template === true || this.d.templateBoot === true,
    });
    ctx.progress({
      stage: 'boot',
      message: `booting (${vm.vmm}, ${vm.accel === 'tcg' ? 'software emulation' : 'KVM'})`,
    });
    mark(ctx, 'spawn'); // ends at the first wait of waitReady
    // The port was free when picked; another process may bind it before the VMM does: pick again.
    for (let attempt = 1; ; attempt++) {
      const sshPort = bridged ? 22 : await freeLoopbackPort();
      const spec: VmmSpec = {
        id: vm.id,
        name: vm.name,
        vcpu: vm.vcpu,
        memoryMib: vm.memoryMib,
        accel: vm.accel,
        kernelPath: k.kernel,
        initrdPath: k.initrd,
        cmdline,
        disks,
        net: bridged
          ? { mode: 'bridge', tap: bridged.tap, mac }
          : { mode: 'user', sshPort, allowOutbound: vm.nat, mac, forwards: this.d.ports?.list(vm.id) ?? [] },
        consoleLog,
        controlSocket: this.d.runtime.controlSocket(vm.id),
        vmmLog: join(dir, vmFiles.vmmLog),
        agentSocket: this.d.paths.agentSocket(vm.id),
        incoming: opts.incoming,
        memoryFile: opts.memoryFile,
      };
      try {
        const h = await this.d.driver.start(spec, ctx.signal, (spawned) =>
          onSpawn({ pid: spawned.pid, startTime: spawned.startTime, controlSocket: spawned.controlSocket, sshPort }),
        );
        return { handles: { ...h, sshPort }, sshPort };
      } catch (e) {
        if (!(e instanceof PortInUse) || bridged || attempt >= SSH_PORT_ATTEMPTS) throw e;
        this.d.log.warn('the ssh port was taken before the VMM bound it; trying another', {
          name: vm.name,
          port: sshPort,
        });
      }
    }
  }

  /**
   * Waits until the guest's agent answers health (when it has one), then until
   * it answers over ssh (when it has sshd); a BootFailure says why it did not.
   * Returns the guest's uptime when its agent first answered (no agent: undefined).
   */
  async waitReady(
    vm: VmRow,
    handles: VmHandles,
    ctx: OpContext,
    guest: GuestTraits,
    /** The agent has just answered (a restore applied the identity through it): no wait for it. */
    agentUp = false,
  ): Promise<number | undefined> {
    if (this.d.templateBoot) guest = { ...guest, sshd: false }; // sshd waits at the gate
    const consoleLog = join(this.d.paths.vmDir(vm.id), vmFiles.console);
    let uptimeMs: number | undefined;
    if (guest.agent && !agentUp) {
      ctx.progress({ stage: 'agent', message: 'waiting for the guest agent' });
      uptimeMs = await timed(ctx, 'agent ready', () => this.waitAgent(vm, handles, consoleLog, ctx.signal));
    }
    if (!guest.sshd) return uptimeMs;
    ctx.progress({ stage: 'ssh', message: 'waiting for ssh' });
    const info = this.d.runtime.sshInfo({ ...vm, sshPort: handles.sshPort });
    // With an agent, sshd's listening socket is seen from inside (no connection, so no sshd child
    // forked and re-exec'd in the guest per probe); the banner stays the fallback.
    const probe =
      this.d.sshProbe ??
      (guest.agent ? (i: SshInfo) => this.probeSshViaAgent(vm, i) : (i: SshInfo) => probeSshBanner(i));
    await timed(ctx, 'ssh ready', () =>
      waitForSsh({
        vmName: vm.name,
        consoleLog,
        timeoutMs: this.d.sshWaitTimeoutMs,
        stallMs: this.d.stallMs ?? STALL_MS,
        signal: ctx.signal,
        pollMs: SSH_POLL_MS,
        isAlive: () => this.d.driver.isAlive(handles),
        probe: () => probe(info, ctx.signal),
      }),
    );
    if (guest.agent) await this.learnHostKey(vm, info.host_key_alias);
    return uptimeMs;
  }

  /**
   * Graceful stop (SPEC §4): the guest agent's shutdown (an orderly poweroff) when
   * the guest has one and answers, else ssh `sync; poweroff` (also first for a v3
   * agent when sshd is there: its shutdown was not orderly); then waits up to the
   * grace for the VMM to exit by itself. Returns the path taken.
   */
  async powerOff(
    vm: Pick<VmRow, 'id' | 'name' | 'sshPort' | 'networkMode'>,
    handles: VmmHandles,
    guest: GuestTraits,
  ): Promise<'agent' | 'ssh' | 'none'> {
    let how: 'agent' | 'ssh' | 'none' = 'none';
    if (guest.agent && (guest.orderlyShutdown || !guest.sshd || !vm.sshPort)) {
      try {
        await this.d.agents.shutdown(vm);
        how = 'agent';
        this.d.log.info('the guest agent is powering the VM off', { name: vm.name });
      } catch (e) {
        this.d.log.warn('the guest agent did not take the shutdown; trying ssh', { name: vm.name, error: String(e) });
      }
    }
    if (how === 'none' && vm.sshPort) {
      const argv = sshArgv('ssh', this.d.runtime.sshInfo(vm), {
        batch: true,
        connectTimeoutS: 3,
        remoteCommand: 'sync; (sleep 0.2; poweroff) >/dev/null 2>&1 &',
      });
      await this.d.runner.run(argv, { timeoutMs: 5000 }).catch(() => undefined);
      how = 'ssh';
    }
    if (how === 'none') return how;
    const clock = this.d.clock ?? realClock;
    const deadline = clock.now() + (this.d.stopGraceMs ?? STOP_GRACE_MS);
    while (clock.now() < deadline && (await this.d.driver.isAlive(handles))) await clock.sleep(100);
    return how;
  }

  /**
   * Readiness no longer logs in over ssh (which recorded the host key by accept-new): the key is
   * read from the guest through its agent and recorded, so `vm run -d` / `vm start` still leave
   * it pinned. Best effort: without it, the first ssh connection records it (accept-new).
   */
  private async learnHostKey(vm: VmRow, alias: string): Promise<void> {
    if (!this.d.keys) return;
    try {
      const { data } = await this.d.agents.use(vm, (c) => c.getFile(GUEST_HOST_KEY_PUB, { maxBytes: 8192 }));
      const key = parseHostPubKey(data.toString('utf8'));
      if (key) await this.d.keys.learn(alias, key);
      else
        this.d.log.warn('the guest host key file is not one public key; left to the first connection', {
          name: vm.name,
        });
    } catch (e) {
      this.d.log.warn('could not read the guest host key through the agent', { name: vm.name, error: String(e) });
    }
  }

  /**
   * Whether sshd listens in the guest, from the agent's PORTS (it reads /proc/net, no fork).
   * An agent that cannot answer PORTS falls back to the banner probe, once per poll.
   */
  private async probeSshViaAgent(vm: VmRow, info: SshInfo): Promise<'none' | 'ready'> {
    let listening: ListeningPort[];
    try {
      listening = (await this.d.agents.ports(vm)).ports;
    } catch {
      return probeSshBanner(info);
    }
    return sshdListening(listening) ? 'ready' : 'none';
  }

  /** The agent's health, bounded by the ssh wait; a VMM that exits meanwhile is an `exited` failure. */
  private async waitAgent(vm: VmRow, handles: VmHandles, consoleLog: string, signal: AbortSignal): Promise<number> {
    const logsHint = `run \`banger vm logs ${vm.name}\` to see the whole console`;
    try {
      return (await this.d.agents.waitBoot(vm, this.d.sshWaitTimeoutMs, signal)).uptimeMs;
    } catch (e) {
      if (signal.aborted) throw e;
      const tail = await consoleTail(consoleLog);
      if (!(await this.d.driver.isAlive(handles)))
        throw new BootFailure(
          'exited',
          `VM "${vm.name}" stopped during boot`,
          `${logsHint}; the console ended with:\n${tail}`,
          tail,
        );
      throw new BootFailure(
        'stuck',
        (e as Error).message,
        `${agentHint(vm.name)}; the console ended with:\n${tail}`,
        tail,
      );
    }
  }
}

/** sshd is up: a TCP socket listens on port 22 (any address, IPv4 or IPv6). */
export function sshdListening(ports: readonly Pick<ListeningPort, 'protocol' | 'port'>[]): boolean {
  return ports.some((p) => p.protocol === 'tcp' && p.port === GUEST_SSH_PORT);
}

/**
 * Readiness of sshd: its banner on the VM's ssh port. No `ssh true` on top (issue 16): that was
 * a full key exchange and login under emulation, paid again by the session that follows
 * (`vm run -- cmd`), and the agent has already shown the guest is up. The guest's sshd starts
 * only after the bootstrap has mounted the work disk (authorized_keys) and made the host key.
 * A guest without a listener resets the connection at once; one whose sshd accepted it is
 * waited for: under TCG, while the rest of the boot competes for the vCPU, sshd's re-exec can
 * take seconds before its banner, and a probe that gave up then would only start another
 * (each one more sshd child in the guest).
 */
export async function probeSshBanner(
  info: Pick<SshInfo, 'host' | 'port'>,
  timeoutMs = SSH_BANNER_WAIT_MS,
): Promise<'none' | 'ready'> {
  return (await readSshBanner(info.host, info.port, timeoutMs)) ? 'ready' : 'none';
}
