import type { ImageRow } from '../../src/store/images.js';
import type { VmRow } from '../../src/store/vms.js';

/* Store rows for unit tests: one complete row each, with what a test cares about overridden. */

/** A managed image `debian` (id img1) using kernel `k`. */
export function imageRow(over: Partial<ImageRow> = {}): ImageRow {
  return {
    id: 'img1',
    name: 'debian',
    source: 'build',
    managed: true,
    dir: '/i',
    rootfsPath: '/i/r',
    workSeedPath: undefined,
    kernelName: 'k',
    distro: 'debian',
    sizeBytes: 1,
    assetsVersion: 1,
    createdAt: 'now',
    ...over,
  };
}

/** A qemu VM `dev` (id v1) of image img1, creating, user-mode network, a qcow2 overlay and no plan yet. */
export function vmRow(over: Partial<VmRow> = {}): VmRow {
  return {
    id: 'v1',
    name: 'dev',
    imageId: 'img1',
    state: 'creating',
    vcpu: 1,
    memoryMib: 512,
    diskBytes: 1,
    overlayBytes: 1,
    nat: false,
    vmm: 'qemu',
    accel: 'tcg',
    networkMode: 'user',
    sshPort: undefined,
    diskStrategy: 'qcow2-overlay',
    rootDisk: undefined,
    handles: undefined,
    bootId: undefined,
    createdAt: 'now',
    updatedAt: 'now',
    ...over,
  };
}
