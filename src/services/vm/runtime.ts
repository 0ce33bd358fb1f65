import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SshInfo } from '../../api/methods.js';
import { renderSshConfig } from '../../ssh/config.js';
import type { VmHandles, VmRepo, VmRow } from '../../store/vms.js';
import { vmFiles, type Paths } from '../../system/paths.js';
import type { VmmHandles } from '../../vmm/driver.js';
import type { Logger } from '../context.js';
import { removeTree } from '../fsutil.js';
import { handlesProblem, readHandlesFile } from './handles.js';
import type { SshKeys } from './sshkeys.js';

export interface RuntimeDeps {
  paths: Paths;
  vms: VmRepo;
  keys: Pick<SshKeys, 'keyPath' | 'knownHosts'>;
  log: Logger;
  /** The VMM's control socket suffix (VmmCapabilities.controlSocket.suffix). */
  socketSuffix: string;
  /** A bridge-mode VM's guest address (ssh at its port 22); undefined: ssh is forwarded on loopback. */
  net?: { address(vm: Pick<VmRow, 'id' | 'networkMode'>): string | undefined };
}

/**
 * The runtime files of VMs: each VM's control socket and handles.json (SPEC §2),
 * and banger's ssh_config of the running VMs.
 */
export class RuntimeFiles {
  constructor(private readonly d: RuntimeDeps) {}

  /** Where a VM's VMM opens its control socket. */
  controlSocket(id: string): string {
    return this.d.paths.controlSocket(id, this.d.socketSuffix);
  }

  /** Written the moment the VMM process exists, atomically. */
  async writeHandles(id: string, h: VmHandles): Promise<void> {
    const file = join(this.d.paths.vmDir(id), vmFiles.handles);
    await writeFile(`${file}.tmp`, `${JSON.stringify(h)}\n`);
    await rename(`${file}.tmp`, file);
  }

  /**
   * The VMM handles of a VM (SPEC §2): handles.json, else the store's copy
   * when the file is missing or corrupt. `problem` describes a corrupt file.
   */
  async handles(vm: VmRow): Promise<{ handles: VmHandles | undefined; problem: string | undefined }> {
    const file = await readHandlesFile(join(this.d.paths.vmDir(vm.id), vmFiles.handles));
    if (file.state === 'ok') return { handles: file.handles, problem: undefined };
    if (file.state === 'missing') return { handles: vm.handles, problem: undefined };
    return { handles: vm.handles, problem: handlesProblem(file.problem, vm.handles !== undefined, vm.id) };
  }

  /** Removes the control socket and handles.json of a VM whose VMM is gone. */
  async clear(id: string): Promise<void> {
    await removeTree(this.controlSocket(id));
    await removeTree(this.d.paths.agentSocket(id));
    await removeTree(join(this.d.paths.vmDir(id), vmFiles.handles));
  }

  /** Rewrites banger's ssh_config atomically from the running VMs. */
  async refreshSshConfig(): Promise<void> {
    const hosts = this.d.vms
      .list()
      .filter((v) => v.state === 'running' && v.sshPort)
      .map((v) => ({
        name: v.name,
        host: this.sshHost(v),
        port: v.sshPort as number,
        key: this.d.keys.keyPath,
        knownHosts: this.d.keys.knownHosts,
      }));
    const file = this.d.paths.sshConfigFile;
    try {
      await mkdir(dirname(file), { recursive: true });
      await writeFile(`${file}.tmp`, renderSshConfig(hosts), { mode: 0o600 });
      await rename(`${file}.tmp`, file);
    } catch (e) {
      this.d.log.warn('cannot write ssh_config', { file, error: String(e) });
    }
  }

  /** Where ssh reaches a VM: its guest address in bridge mode, else loopback (the forwarded port). */
  private sshHost(vm: Pick<VmRow, 'id' | 'networkMode'>): string {
    return this.d.net?.address(vm) ?? '127.0.0.1';
  }

  sshInfo(vm: Pick<VmRow, 'id' | 'name' | 'sshPort' | 'networkMode'>): SshInfo {
    return {
      name: vm.name,
      host: this.sshHost(vm),
      port: vm.sshPort ?? 0,
      user: 'root',
      key: this.d.keys.keyPath,
      known_hosts: this.d.keys.knownHosts,
      host_key_alias: `${vm.name}.vm`,
    };
  }
}

/** The driver's view of recorded handles. */
export function vmmHandles(h: VmHandles): VmmHandles {
  return { pid: h.pid, startTime: h.startTime, controlSocket: h.controlSocket };
}
