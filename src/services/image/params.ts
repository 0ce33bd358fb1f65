/** What image.pull and image.build take (sizes already parsed by the API schema). */
export interface PullParams {
  ref: string;
  name?: string | undefined;
  kernel_ref?: string | undefined;
  kernel?: string | undefined;
  initrd?: string | undefined;
  modules?: string | undefined;
  /** Rootfs size in bytes (parsed from the API's `size`). */
  size_bytes?: number | undefined;
  sha256?: string | undefined;
  /** Upstream parity: install openssh-server + systemd-sysv once, in a throwaway VM (install-sshd.ts). */
  install_sshd?: boolean | undefined;
}

export interface BuildParams {
  name: string;
  suite?: string | undefined;
  mirror?: string | undefined;
  packages?: string[] | undefined;
  /** Rootfs size in bytes (parsed from the API's `size`). */
  size_bytes?: number | undefined;
}
