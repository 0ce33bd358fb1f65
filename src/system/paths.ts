import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppError } from '../errors.js';

/** Unix socket paths longer than this do not fit in sockaddr_un. */
export const MAX_SOCKET_PATH = 107;

export interface PathEnv {
  HOME?: string | undefined;
  XDG_CONFIG_HOME?: string | undefined;
  XDG_STATE_HOME?: string | undefined;
  XDG_CACHE_HOME?: string | undefined;
  XDG_RUNTIME_DIR?: string | undefined;
}

/**
 * The runtime dir without XDG_RUNTIME_DIR: root's is under /run, which only
 * root can write, so no local user can plant a link or a directory there first;
 * other users fall back to /tmp/banger-<uid> (checked before use, system/dirs.ts).
 */
function defaultRuntimeDir(uid: number): string {
  return uid === 0 ? '/run/banger' : `/tmp/banger-${uid}`;
}

/** Every on-disk name banger uses, derived from the XDG variables (SPEC §2). */
export class Paths {
  readonly configDir: string;
  readonly stateDir: string;
  readonly cacheDir: string;
  readonly runtimeDir: string;
  readonly home: string;

  constructor(env: PathEnv, uid: number) {
    const home = env.HOME ?? '/root';
    this.home = home;
    this.configDir = join(env.XDG_CONFIG_HOME || join(home, '.config'), 'banger');
    this.stateDir = join(env.XDG_STATE_HOME || join(home, '.local', 'state'), 'banger');
    this.cacheDir = join(env.XDG_CACHE_HOME || join(home, '.cache'), 'banger');
    this.runtimeDir = env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'banger') : defaultRuntimeDir(uid);
  }

  get configFile(): string {
    return join(this.configDir, 'config.toml');
  }
  get sshConfigFile(): string {
    return join(this.configDir, 'ssh_config');
  }
  get dbFile(): string {
    return join(this.stateDir, 'banger.db');
  }
  /** Held (fcntl lock) by the one daemon using this state dir (system/statelock.ts). */
  get stateLock(): string {
    return join(this.stateDir, 'bangerd.lock');
  }
  /** The TCP API listener's bearer token (0600; daemon/api-token.ts). */
  get apiToken(): string {
    return join(this.stateDir, 'api-token');
  }

  get daemonLog(): string {
    return join(this.stateDir, 'bangerd.log');
  }
  get imagesDir(): string {
    return join(this.stateDir, 'images');
  }
  get kernelsDir(): string {
    return join(this.stateDir, 'kernels');
  }
  get vmsDir(): string {
    return join(this.stateDir, 'vms');
  }
  get sshDir(): string {
    return join(this.stateDir, 'ssh');
  }
  get sshKey(): string {
    return join(this.sshDir, 'id_ed25519');
  }
  get knownHosts(): string {
    return join(this.sshDir, 'known_hosts');
  }
  get blobsDir(): string {
    return join(this.cacheDir, 'oci', 'blobs', 'sha256');
  }
  /** Warm-start templates (services/vm/templates.ts), one dir per key, outside every VM dir. */
  get templatesDir(): string {
    return join(this.stateDir, 'templates');
  }
  templateDir(key: string): string {
    return join(this.templatesDir, key);
  }
  /**
   * Guest RAM of VMs restored from a template (a private copy of the template's memory file per
   * restore, unlinked once the VMM has it mapped): on /dev/shm, a tmpfs, so the guest's writes never
   * go to a disk. One dir per runtime dir (so per daemon), private (system/dirs.ts).
   */
  get ramDir(): string {
    return join('/dev/shm', `banger-${createHash('sha256').update(this.runtimeDir).digest('hex').slice(0, 12)}`);
  }
  ramFile(vmId: string): string {
    return join(this.ramDir, `${vmId}.ram`);
  }
  /** VM snapshots (services/vm/snapshots.ts): one dir per snapshot (saved guest, work disk), outside every VM dir. */
  get snapshotsDir(): string {
    return join(this.stateDir, 'snapshots');
  }
  snapshotDir(id: string): string {
    return join(this.snapshotsDir, id);
  }
  /** Frozen root-disk layers snapshots and the VMs restored from them stand on (refcounted, shared). */
  get layersDir(): string {
    return join(this.stateDir, 'layers');
  }
  layerPath(id: string, format: 'qcow2' | 'raw'): string {
    return join(this.layersDir, `${id}.${format}`);
  }
  get tmpDir(): string {
    return join(this.stateDir, 'tmp');
  }
  /** Registry credentials (docker login), read when present. */
  get dockerConfig(): string {
    return join(this.home, '.docker', 'config.json');
  }
  get socket(): string {
    return this.checkedSocket(join(this.runtimeDir, 'bangerd.sock'));
  }
  get pidFile(): string {
    return join(this.runtimeDir, 'bangerd.pid');
  }

  imageDir(id: string): string {
    return join(this.imagesDir, id);
  }
  /** Staging of an image being made; under tmp/, so it never shares a directory with finished images. */
  imageStaging(id: string): string {
    return join(this.tmpDir, `image-${id}`);
  }
  kernelDir(name: string): string {
    return join(this.kernelsDir, name);
  }
  /**
   * Work dir of one kernel install (`out/` becomes kernels/<name>, `scratch/` is thrown away).
   * Under tmp/ with a random id: no kernel name can collide with it, and startup empties tmp/.
   */
  kernelWork(name: string, id: string): string {
    return join(this.tmpDir, `kernel-${name}-${id}`);
  }
  vmDir(id: string): string {
    return join(this.vmsDir, id);
  }
  /** A VM's VMM control socket; `suffix` is the VMM's (VmmCapabilities.controlSocket), e.g. `.qmp`. */
  controlSocket(vmId: string, suffix: string): string {
    return this.checkedSocket(join(this.runtimeDir, `${vmId.slice(0, 12)}${suffix}`));
  }

  /**
   * Host end of a VM's guest agent channel: qemu bridges the guest's virtio-serial
   * port org.banger.agent to a Unix socket here (docs/agent-protocol.md, Transports).
   */
  agentSocket(vmId: string): string {
    return this.checkedSocket(join(this.runtimeDir, `${vmId.slice(0, 12)}.agent`));
  }

  private checkedSocket(path: string): string {
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
      throw new AppError(
        'precondition',
        `socket path is too long (${Buffer.byteLength(path)} > ${MAX_SOCKET_PATH} bytes): ${path}`,
        {
          hint: 'set XDG_RUNTIME_DIR to a shorter directory',
        },
      );
    }
    return path;
  }
}

/** Files inside one image directory. */
export const imageFiles = {
  rootfs: 'rootfs.ext4',
  workSeed: 'work-seed.ext4',
  manifest: 'manifest.json',
} as const;

/** Files inside one kernel directory. */
export const kernelFiles = {
  bzImage: 'bzImage',
  vmlinux: 'vmlinux',
  initrd: 'initrd.img',
  modulesDisk: 'modules.ext4',
  manifest: 'manifest.json',
} as const;

/** Files inside one VM directory. */
export const vmFiles = {
  /** Root disk as a qcow2 overlay over the image (qcow2-overlay). */
  rootQcow2: 'root.qcow2',
  /** Root disk as a raw copy (reflink, sparse-copy). Older bangers named these root.qcow2 too (services/vm/disks.ts renames them). */
  rootRaw: 'root.raw',
  /** Copy-on-write store of a device-mapper snapshot root disk. */
  rootCow: 'root.cow',
  work: 'work.ext4',
  console: 'console.log',
  vmmLog: 'vmm.log',
  handles: 'handles.json',
} as const;

/** Names inside a template dir (Paths.templateDir); its disks keep their VM-dir names (vmFiles). */
export const templateFiles = {
  /** The saved guest (qemu migration stream); gone once the template is superseded. */
  state: 'state.bin',
  /** The guest's RAM (a shared memory file while it ran; the state holds devices only). */
  ram: 'ram.bin',
  meta: 'template.json',
} as const;

/** Names inside a snapshot dir (Paths.snapshotDir). */
export const snapshotFiles = {
  /** The saved guest (qemu migration stream). */
  state: 'state.bin',
  work: 'work.ext4',
} as const;

/** The installed package's root (…/banger), found from this compiled file (dist/src/system). */
export function packageRoot(): string {
  return fileURLToPath(new URL('../../../', import.meta.url));
}

/** Static guest programs built by `npm run build` from guest-src/. */
export function guestBinary(name: 'banger-init' | 'banger-agent'): string {
  return join(packageRoot(), 'dist', 'guest', name);
}

/** The host's routing tables (read-only; the `image pull --install-sshd` egress check). */
export const hostRouteTables = { ipv4: '/proc/net/route', ipv6: '/proc/net/ipv6_route' } as const;
