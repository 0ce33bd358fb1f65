import { parse as parseToml, TomlError } from 'smol-toml';
import { parseApiListen } from './api-listen.js';
import { AppError, badRequest } from '../errors.js';
import { validateConfigFile } from './schema.js';

/*
 * The Config the daemon and CLI run with: its shape, the defaults derived from
 * the host, and parseConfig (config.toml text → Config). Pure: reading the file
 * from disk is read-file.ts, the key-by-key schema is schema.ts.
 */

export interface HostFacts {
  cpus: number;
  memBytes: number;
}

/** Where a VM default came from: the config file, derived from the host, or a fixed builtin. */
export type Provenance = 'config' | 'auto' | 'builtin';

export interface Config {
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  vmm: 'auto' | 'firecracker' | 'qemu';
  accel: 'auto' | 'kvm' | 'tcg';
  firecrackerBin: string;
  qemuBin: string;
  sshKeyPath: string | undefined;
  sshWaitTimeoutMs: number;
  insecureRegistries: string[];
  catalog: string | undefined;
  defaultImageName: string;
  defaultKernelName: string;
  /** Debian mirror URL for local image builds; undefined means the builder's default. */
  mirror: string | undefined;
  networkMode: 'user' | 'bridge';
  bridgeName: string;
  bridgeIp: string;
  cidr: number;
  dnsListen: string;
  /** The TCP API listener (docs/http-api.md); off unless set. */
  apiListen?: string;
  /** Allows apiListen beyond loopback. */
  apiListenRemote?: boolean;
  /** 0 disables auto-stopping stale VMs. */
  autoStopStaleAfterMs: number;
  /** Most bytes of uncompressed tar an image pull or build may read, all layers together (max_unpacked_size). */
  maxUnpackedBytes: number;
  /** warm_start: a VM's first start restores from a current template of its spec (SPEC §7.6). */
  warmStart: boolean;
  /**
   * warm_start_background: after the first cold boot of a VM of the default spec (default image and
   * vm_defaults) with no current template, the daemon makes that template in the background (SPEC §7.6).
   */
  warmStartBackground: boolean;
  /**
   * Test-only (test_install_sshd_offline, docs/TESTING.md): `image pull --install-sshd` skips its egress
   * check and its throwaway VM keeps restrict=on, so tests run it against a fake package manager offline.
   */
  testInstallSshdOffline?: boolean;
  /**
   * Test-only (test_assume_kvm): the daemon acts as if KVM were usable, so the firecracker path runs
   * end to end against a fake firecracker (test/fakes/firecracker-bin.ts). Never boots anything real.
   */
  testAssumeKvm?: boolean;
  /**
   * Test-only (test_template_boot): every VM boots as a template would (banger.template=1: sshd waits
   * at the gate) and its boot waits for the agent only; the test opens the gate with refreshIdentity.
   */
  testTemplateBoot?: boolean;
  /** Test-only (test_skip_reseed): refreshIdentity may skip RNDRESEEDCRNG, to show the cloned RNG state. */
  testSkipReseed?: boolean;
  /** Test-only (test_rng_sample): a restore's agent writes its first random bytes after the reseed step to /run/banger-rng-sample. */
  testRngSample?: boolean;
  vmDefaults: { vcpu: number; memoryMib: number; diskSizeBytes: number; systemOverlaySizeBytes: number };
  provenance: {
    vcpu: Provenance;
    memoryMib: Provenance;
    diskSizeBytes: Provenance;
    systemOverlaySizeBytes: Provenance;
  };
  fileSync: { host: string; guest: string; mode: number }[];
}

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
/** An image's tar content beyond this is refused unless max_unpacked_size says otherwise. */
export const DEFAULT_MAX_UNPACKED_BYTES = 32 * GIB;

/** vcpu default: a quarter of the host's CPUs, between 1 and 4. */
export function autoVcpu(host: HostFacts): number {
  const q = Math.floor(host.cpus / 4);
  return Number.isFinite(q) ? Math.min(4, Math.max(1, q)) : 1;
}

/** Memory default: an eighth of host RAM in MiB, rounded down to a multiple of 128, between 512 and 8192. */
export function autoMemoryMib(host: HostFacts): number {
  const mib = Math.floor(host.memBytes / 8 / MIB / 128) * 128;
  return Number.isFinite(mib) ? Math.min(8192, Math.max(512, mib)) : 512;
}

/** The most vCPUs a VM may have: the host's CPUs (more only slows the guest down), and never above 64. */
export function maxVcpu(host: HostFacts): number {
  return Math.max(1, Math.min(64, Math.floor(host.cpus)));
}

/** The most memory a VM may have, in MiB: the host's RAM. */
export function maxMemoryMib(host: HostFacts): number {
  return Math.floor(host.memBytes / MIB);
}

/** The configuration with no config file. */
export function defaultConfig(host: HostFacts): Config {
  return {
    logLevel: 'info',
    vmm: 'auto',
    accel: 'auto',
    firecrackerBin: 'firecracker',
    qemuBin: 'qemu-system-x86_64',
    sshKeyPath: undefined,
    sshWaitTimeoutMs: 90_000,
    insecureRegistries: [],
    catalog: undefined,
    defaultImageName: 'debian-bookworm',
    defaultKernelName: 'debian-bookworm-cloud',
    mirror: undefined,
    networkMode: 'user',
    bridgeName: 'br-fc',
    bridgeIp: '172.16.0.1',
    cidr: 24,
    dnsListen: '127.0.0.1:42069',
    autoStopStaleAfterMs: 0,
    maxUnpackedBytes: DEFAULT_MAX_UNPACKED_BYTES,
    warmStart: true,
    warmStartBackground: true,
    vmDefaults: {
      vcpu: autoVcpu(host),
      memoryMib: autoMemoryMib(host),
      diskSizeBytes: 8 * GIB,
      systemOverlaySizeBytes: 8 * GIB,
    },
    provenance: { vcpu: 'auto', memoryMib: 'auto', diskSizeBytes: 'builtin', systemOverlaySizeBytes: 'builtin' },
    fileSync: [],
  };
}

function tomlError(e: TomlError, source: string): AppError {
  const firstLine = (e.message.split('\n')[0] ?? '').replace(/^Invalid TOML document:\s*/, '');
  return new AppError('bad_request', `${source}: invalid TOML at line ${e.line}, column ${e.column}: ${firstLine}`, {
    hint: `fix the syntax on line ${e.line} of ${source}`,
    detail: e.codeblock,
    cause: e,
  });
}

/**
 * Parses config.toml text over the defaults. `source` names the file in error
 * messages. Every problem is a badRequest: TOML syntax (with line and column),
 * unknown keys, and invalid values (naming the key path).
 */
export function parseConfig(text: string, source: string, host: HostFacts): Config {
  const cfg = defaultConfig(host);
  let data: unknown;
  try {
    data = parseToml(text);
  } catch (e) {
    if (e instanceof TomlError) throw tomlError(e, source);
    throw e;
  }
  const f = validateConfigFile(data, source);

  if (f.log_level !== undefined) cfg.logLevel = f.log_level;
  if (f.vmm !== undefined) cfg.vmm = f.vmm;
  if (f.accel !== undefined) cfg.accel = f.accel;
  if (f.firecracker_bin !== undefined) cfg.firecrackerBin = f.firecracker_bin;
  if (f.qemu_bin !== undefined) cfg.qemuBin = f.qemu_bin;
  if (f.ssh_key_path !== undefined) cfg.sshKeyPath = f.ssh_key_path;
  if (f.ssh_wait_timeout !== undefined) cfg.sshWaitTimeoutMs = f.ssh_wait_timeout;
  if (f.insecure_registries !== undefined) cfg.insecureRegistries = [...f.insecure_registries];
  if (f.catalog !== undefined) cfg.catalog = f.catalog;
  if (f.default_image_name !== undefined) cfg.defaultImageName = f.default_image_name;
  if (f.default_kernel_name !== undefined) cfg.defaultKernelName = f.default_kernel_name;
  if (f.mirror !== undefined) cfg.mirror = f.mirror;
  if (f.network_mode !== undefined) cfg.networkMode = f.network_mode;
  if (f.bridge_name !== undefined) cfg.bridgeName = f.bridge_name;
  if (f.bridge_ip !== undefined) cfg.bridgeIp = f.bridge_ip;
  if (f.cidr !== undefined) cfg.cidr = f.cidr;
  if (f.dns_listen !== undefined) cfg.dnsListen = f.dns_listen;
  // Checked here, so the CLI names a bad one before it starts the daemon.
  if (f.api_listen !== undefined) parseApiListen(f.api_listen, f.api_listen_remote === true);
  if (f.api_listen !== undefined) cfg.apiListen = f.api_listen;
  if (f.api_listen_remote !== undefined) cfg.apiListenRemote = f.api_listen_remote;
  if (f.auto_stop_stale_after !== undefined) cfg.autoStopStaleAfterMs = f.auto_stop_stale_after;
  if (f.max_unpacked_size !== undefined) cfg.maxUnpackedBytes = f.max_unpacked_size;
  if (f.warm_start !== undefined) cfg.warmStart = f.warm_start;
  if (f.warm_start_background !== undefined) cfg.warmStartBackground = f.warm_start_background;
  if (f.test_install_sshd_offline === true) cfg.testInstallSshdOffline = true;
  if (f.test_assume_kvm === true) cfg.testAssumeKvm = true;
  if (f.test_template_boot === true) cfg.testTemplateBoot = true;
  if (f.test_skip_reseed === true) cfg.testSkipReseed = true;
  if (f.test_rng_sample === true) cfg.testRngSample = true;

  const vd = f.vm_defaults;
  // Limits that depend on this host (the schema checks what holds everywhere).
  if (vd?.vcpu !== undefined && vd.vcpu > maxVcpu(host)) {
    throw badRequest(
      `${source}: vm_defaults.vcpu ${vd.vcpu} is more than this host's ${host.cpus} CPUs: at most ${maxVcpu(host)}`,
      `lower vm_defaults.vcpu in ${source}, or remove it to use the default`,
    );
  }
  if (vd?.memory_mib !== undefined && vd.memory_mib > maxMemoryMib(host)) {
    throw badRequest(
      `${source}: vm_defaults.memory_mib ${vd.memory_mib} MiB is more than this host's memory: at most ${maxMemoryMib(host)} MiB`,
      `lower vm_defaults.memory_mib in ${source}, or remove it to use the default`,
    );
  }
  if (vd?.vcpu !== undefined) {
    cfg.vmDefaults.vcpu = vd.vcpu;
    cfg.provenance.vcpu = 'config';
  }
  if (vd?.memory_mib !== undefined) {
    cfg.vmDefaults.memoryMib = vd.memory_mib;
    cfg.provenance.memoryMib = 'config';
  }
  if (vd?.disk_size !== undefined) {
    cfg.vmDefaults.diskSizeBytes = vd.disk_size;
    cfg.provenance.diskSizeBytes = 'config';
  }
  if (vd?.system_overlay_size !== undefined) {
    cfg.vmDefaults.systemOverlaySizeBytes = vd.system_overlay_size;
    cfg.provenance.systemOverlaySizeBytes = 'config';
  }

  if (f.file_sync !== undefined) {
    cfg.fileSync = f.file_sync.map((e) => ({
      host: e.host,
      guest: e.guest,
      mode: e.mode === undefined ? 0o600 : parseInt(e.mode, 8),
    }));
  }
  return cfg;
}
