import type { VmRow } from '../../store/vms.js';

/* What vm.create and vm.set hand the VM service, sizes already parsed (api/methods.ts). */

export interface CreateParams {
  name?: string | undefined;
  image?: string | undefined;
  vcpu?: number | undefined;
  memory_mib?: number | undefined;
  /** Work disk size, already parsed to bytes (the API schema reads sizes). */
  disk_bytes?: number | undefined;
  nat?: boolean | undefined;
  start?: boolean | undefined;
  /** Port specs `[ADDR:]HOST_PORT:GUEST_PORT[/tcp|/udp]` (services/vm/portspec.ts). */
  publish?: string[] | undefined;
  /** Boot cold even when a current template exists (warm start, SPEC §7.6). */
  cold?: boolean | undefined;
  /** Restore the named snapshot (issue 18): its image and sizes, its guest's memory and processes. */
  from_snapshot?: string | undefined;
  /** 'agent': the create returns once the guest agent answers, without waiting for sshd. */
  ready?: 'ssh' | 'agent' | undefined;
}

export interface SetParams {
  vcpu?: number | undefined;
  memory_mib?: number | undefined;
  disk_bytes?: number | undefined;
}

/** What create decides about a new VM; the rest of its first row is fixed. */
export type VmDraft = Omit<
  VmRow,
  'state' | 'sshPort' | 'diskStrategy' | 'rootDisk' | 'handles' | 'bootId' | 'createdAt' | 'updatedAt'
>;

/** The row a create inserts: `creating`, no disks or VMM yet. */
export function newVmRow(d: VmDraft, now = new Date().toISOString()): VmRow {
  return {
    ...d,
    state: 'creating',
    sshPort: undefined,
    diskStrategy: 'qcow2-overlay',
    rootDisk: undefined,
    handles: undefined,
    bootId: undefined,
    createdAt: now,
    updatedAt: now,
  };
}
