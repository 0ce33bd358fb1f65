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
}

export interface SetParams {
  vcpu?: number | undefined;
  memory_mib?: number | undefined;
  disk_bytes?: number | undefined;
}
