import type { SshInfo } from '../../api/methods.js';
import type { Config, HostFacts } from '../../config/config.js';
import type { ImageRepo } from '../../store/images.js';
import type { PortRepo } from '../../store/ports.js';
import type { SnapshotRepo } from '../../store/snapshots.js';
import type { VmRepo } from '../../store/vms.js';
import type { AccelDecision } from '../../system/host.js';
import type { Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { VmmChoice } from '../../vmm/choice.js';
import type { VmmDriver } from '../../vmm/driver.js';
import type { Logger } from '../context.js';
import type { ImageService } from '../image/service.js';
import type { Pause } from '../testpause.js';
import type { VmAgents } from './agent.js';
import type { Clock } from './boot.js';
import type { SshKeys } from './sshkeys.js';
import type { BridgeNetwork } from './vmnet.js';

/** What VmService (service.ts) is made of. */
export interface VmServiceDeps {
  paths: Paths;
  vms: VmRepo;
  images: ImageRepo;
  imageService: Pick<ImageService, 'ensure' | 'kernelFilesFor' | 'withRootfs'>;
  /** The VMM; the service uses only what its capabilities declare. */
  driver: VmmDriver;
  runner: CommandRunner;
  keys: SshKeys;
  config: Config;
  /** CPUs and RAM of this host: the upper limits of vcpu and memory_mib. */
  host: HostFacts;
  accel: AccelDecision;
  /** Which VMM the daemon runs and why (vmm/choice.ts), shown by `vm show`. */
  vmm?: VmmChoice;
  tscKhz: number | undefined;
  log: Logger;
  /** How readiness is probed; the default reads the sshd banner, then runs `true` over ssh. */
  sshProbe?: (info: SshInfo, signal: AbortSignal) => Promise<'none' | 'banner' | 'ready'>;
  stallMs?: number;
  /** How long a graceful stop waits for the VMM to exit before killing it (SPEC §4: 10 s). */
  stopGraceMs?: number;
  /** Test-only pause points (BANGER_TEST_PAUSE); none by default. */
  pause?: Pause;
  /** Time for the graceful-stop wait; tests pass a pretend clock. */
  clock?: Clock;
  /** The guest-agent connections; by default over Paths.agentSocket. */
  agents?: VmAgents;
  /** Bridge-mode networking (SPEC §7.3); given when network_mode = "bridge". */
  bridge?: BridgeNetwork;
  /** Published ports of VMs (publish.ts). */
  ports: PortRepo;
  /** VM snapshots and their layers (snapshots.ts). */
  snaps: SnapshotRepo;
}
