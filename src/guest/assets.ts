/**
 * Files banger injects into every image (SPEC §7.4). Bump ASSETS_VERSION when
 * any of them changes; images record the version they were built with
 * (v4: the agent's SHUTDOWN asks PID 1 for an orderly poweroff; no first-boot sshd installer;
 * v5: boot speed (issue 16, docs/boot-profile.md): no udev driver autoload, e2scrub_reap masked,
 * a bootstrap that reads files with the shell's `read` instead of forking `cat`);
 * v6: banger.root/work/modules may name a /dev/ path instead of a serial (firecracker);
 * v7: sshd starts right after the bootstrap, not after basic.target (SSHD_EARLY_DROPIN).
 * v8: agent protocol 2 (SET_IDENTITY machine-id/clock/network/reseed/open-gate), the bootstrap's
 * `identity` and `gate` modes and banger-gate.service (templates, docs/warm-start.md).
 * v9: the agent's FILE_LIST (a directory's entries, lstat'ed: the SDK's vm.files.list); the
 * identity's new MAC is announced (arp_notify, link down/up), or qemu's user-mode network keeps
 * sending to the template's MAC and a restored guest's sshd is unreachable;
 * boot speed round 3 (docs/boot-profile.md): the root grow at nice 19, the hostname set without
 * forks, the modules mount point not re-made;
 * `identity gate=1` on a guest that has a host key already (a VM restored from a snapshot of a
 * running VM, issue 18) makes a new one and reloads the running sshd.
 * v10: the gate holds only sshd and machine-id-commit (GATED_UNITS), not sysinit.target: a template
 * is saved with the rest of the boot done, so a restore runs only what the identity needs.
 * v11: the agent's test-only SET_IDENTITY record rng-sample (the reseed-off test, docs/warm-start.md).
 */
export const ASSETS_VERSION = 11;

import { guestBinary } from '../system/paths.js';
import { BOOTSTRAP_SCRIPT, GATE_OPEN_PATH, HOST_KEY_GIVEN } from './bootstrap-script.js';

export { BOOTSTRAP_SCRIPT, GATE_OPEN_PATH, HOST_KEY_GIVEN };

export const BOOTSTRAP_PATH = '/usr/local/libexec/banger-bootstrap';
export const BOOTSTRAP_UNIT = 'banger-bootstrap.service';
export const GATE_UNIT = 'banger-gate.service';
export const BOOTSTRAP_UNIT_TEXT = `[Unit]
Description=banger guest bootstrap (identity, disks, network, ssh host key)
DefaultDependencies=no
After=systemd-remount-fs.service
Before=systemd-udev-trigger.service systemd-modules-load.service local-fs.target network-pre.target ssh.service sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${BOOTSTRAP_PATH}

[Install]
WantedBy=sysinit.target
`;

/**
 * The units a template boot holds at the gate: what would bake one VM's identity into every VM
 * restored from it (sshd serves the host key the gate makes; machine-id-commit would write the
 * template's transient machine-id to the shared disk). Every other unit runs to completion before
 * the template is saved, so a restore does not boot them again (v10; v8 held sysinit.target).
 */
export const GATED_UNITS: readonly string[] = ['ssh.service', 'sshd.service', 'systemd-machine-id-commit.service'];

/**
 * A template boot's gate (banger.template=1; skipped at no cost otherwise): GATED_UNITS wait until
 * the agent applied the restored VM's identity and opened it.
 */
export const GATE_UNIT_TEXT = `[Unit]
Description=banger template gate (waits for the VM's own identity after a restore)
DefaultDependencies=no
ConditionKernelCommandLine=banger.template=1
After=banger-bootstrap.service banger-agent.service
Before=${GATED_UNITS.join(' ')}

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=infinity
ExecStart=${BOOTSTRAP_PATH} gate

[Install]
WantedBy=sysinit.target
`;

/** Only the ed25519 key: generating RSA keys at first boot costs seconds under TCG. */
export const SSHD_DROPIN = `# Managed by banger.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile /root/.ssh/authorized_keys
UseDNS no
`;

/**
 * ssh.service drop-in (issue 16, docs/boot-profile.md): sshd needs only what the bootstrap makes
 * (network, the work disk's authorized_keys, the host key; the bootstrap is ordered before
 * ssh.service), not udev's coldplug, sysinit and basic.target, which held it seconds under TCG.
 * Ordering after other units (e.g. a banger identity unit) still works: a drop-in adds After=.
 * The empty ExecStartPre= drops Debian's `sshd -t` (one more sshd exec; `sshd -D` checks the
 * configuration itself).
 */
export const SSHD_EARLY_DROPIN_PATH = '/etc/systemd/system/ssh.service.d/banger-early.conf';
export const SSHD_EARLY_DROPIN = `# Managed by banger: sshd starts right after banger-bootstrap (boot speed; banger's docs/boot-profile.md).
[Unit]
DefaultDependencies=no
After=${BOOTSTRAP_UNIT}
Conflicts=shutdown.target
Before=shutdown.target

[Service]
ExecStartPre=
`;

/**
 * Masks udev's /lib/udev/rules.d/80-drivers.rules: no module is loaded for a device's modalias at
 * coldplug. Under TCG that loading (kvm, the CPU's crypto and cpufreq modules, ACPI button, each
 * signature-checked) competed with sshd for the one vCPU; the drivers a VM needs (virtio) are in
 * banger's initramfs, and modprobe by name (docker's overlay, br_netfilter, ...) still works.
 */
export const UDEV_NO_AUTOLOAD_PATH = '/etc/udev/rules.d/80-drivers.rules';
export const UDEV_NO_AUTOLOAD = `# Managed by banger: no module autoload at coldplug (boot speed; see banger's docs/boot-profile.md).
`;

/** Units masked in every image: e2scrub_reap (LVM snapshots of e2scrub; none in a VM) ran for seconds at boot. */
export const MASKED_UNITS: readonly string[] = ['e2scrub_reap.service'];

/** The guest agent (guest-src/banger-agent.c); banger-init runs it at this path in images without systemd. */
export const AGENT_PATH = '/usr/local/libexec/banger-agent';
export const AGENT_UNIT = 'banger-agent.service';

/**
 * Started early (it needs only /dev, /proc and /sys), after the bootstrap has mounted the
 * work disk on /root so commands start in the right /root; restarted whenever it exits.
 */
export const AGENT_UNIT_TEXT = `[Unit]
Description=banger guest agent (virtio-serial port org.banger.agent)
DefaultDependencies=no
After=systemd-remount-fs.service banger-bootstrap.service
Before=sysinit.target
StartLimitIntervalSec=0

[Service]
ExecStart=${AGENT_PATH}
Restart=always
RestartSec=1

[Install]
WantedBy=sysinit.target
`;

/**
 * Directories every image needs as mount points or for banger-init as PID 1
 * (images without systemd); the pipeline creates the missing ones at pull time.
 */
export const MOUNT_POINTS: readonly { path: string; mode: number }[] = [
  { path: '/dev', mode: 0o755 },
  { path: '/proc', mode: 0o555 },
  { path: '/sys', mode: 0o555 },
  { path: '/run', mode: 0o755 },
  { path: '/tmp', mode: 0o1777 },
  { path: '/root', mode: 0o700 },
];

/** A file with its content here, or a host file (a built guest program) copied in. */
export type GuestAsset = { path: string; mode: number } & ({ content: string } | { hostSource: string });

export interface GuestSymlink {
  path: string;
  target: string;
}

/** Every image's assets: bootstrap + agent, their units and enable links, the sshd drop-in. */
export function guestAssets(): { files: GuestAsset[]; symlinks: GuestSymlink[] } {
  return {
    files: [
      { path: BOOTSTRAP_PATH, content: BOOTSTRAP_SCRIPT, mode: 0o755 },
      { path: `/etc/systemd/system/${BOOTSTRAP_UNIT}`, content: BOOTSTRAP_UNIT_TEXT, mode: 0o644 },
      { path: AGENT_PATH, hostSource: guestBinary('banger-agent'), mode: 0o755 },
      { path: `/etc/systemd/system/${AGENT_UNIT}`, content: AGENT_UNIT_TEXT, mode: 0o644 },
      { path: `/etc/systemd/system/${GATE_UNIT}`, content: GATE_UNIT_TEXT, mode: 0o644 },
      { path: '/etc/ssh/sshd_config.d/banger.conf', content: SSHD_DROPIN, mode: 0o644 },
      { path: UDEV_NO_AUTOLOAD_PATH, content: UDEV_NO_AUTOLOAD, mode: 0o644 },
      { path: SSHD_EARLY_DROPIN_PATH, content: SSHD_EARLY_DROPIN, mode: 0o644 },
    ],
    symlinks: [
      {
        path: `/etc/systemd/system/sysinit.target.wants/${BOOTSTRAP_UNIT}`,
        target: `/etc/systemd/system/${BOOTSTRAP_UNIT}`,
      },
      {
        path: `/etc/systemd/system/sysinit.target.wants/${AGENT_UNIT}`,
        target: `/etc/systemd/system/${AGENT_UNIT}`,
      },
      {
        path: `/etc/systemd/system/sysinit.target.wants/${GATE_UNIT}`,
        target: `/etc/systemd/system/${GATE_UNIT}`,
      },
      ...MASKED_UNITS.map((u) => ({ path: `/etc/systemd/system/${u}`, target: '/dev/null' })),
    ],
  };
}

/** Paths that must never reach an image: host keys are per VM. */
export function isBuildTimeSecret(relPath: string): boolean {
  return /^etc\/ssh\/ssh_host_[^/]*key(\.pub)?$/.test(relPath);
}
