import { randomBytes } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError, operationFailed } from '../../errors.js';
import type { ImageRow } from '../../store/images.js';
import { imageFiles } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { Logger, OpContext } from '../context.js';
import { removeTree } from '../fsutil.js';
import { checkCleanExt4 } from './bundle-seed.js';
import { sshdInstallCommand } from './install-sshd.js';
import { readImageManifest } from './oci-config.js';

/*
 * `image pull --install-sshd`, the part after the pull: upstream banger's
 * install of openssh-server (+ systemd-sysv) with the image's own package
 * manager, done once in a throwaway VM with outbound network, through the
 * guest agent; the VM's root disk then becomes the image's rootfs.
 */

/** The install may download and unpack a few hundred MiB under emulation. */
export const INSTALL_TIMEOUT_MS = 30 * 60_000;
/** Short guest commands (os-release, the check for sshd, sync). */
const SHORT_TIMEOUT_MS = 60_000;
/** How much of a failed install's output the error carries. */
const TAIL_BYTES = 2000;

export interface GuestResult {
  /** null when the command was killed by a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** What the install needs from the VM side (the daemon wires VmService and its agents). */
export interface InstallVmOps {
  /** Creates and boots a VM from `image` with outbound network (user mode, restrict=off); resolves once its agent answers. */
  create(image: string, vmName: string, ctx: OpContext): Promise<void>;
  /** Runs argv as root in the VM through its agent; output bounded by the implementation. */
  exec(vmName: string, argv: string[], timeoutMs: number, signal: AbortSignal): Promise<GuestResult>;
  /** Graceful stop (the agent's sync + poweroff). */
  stop(vmName: string, ctx: OpContext): Promise<void>;
  /** The VM's root disk as the VMM opened it. */
  rootDisk(vmName: string): { path: string; format: 'raw' | 'qcow2' };
  /** Removes the VM, its disks and its process. */
  delete(vmName: string, ctx: OpContext): Promise<void>;
}

export interface InstallDeps {
  vms: InstallVmOps;
  runner: CommandRunner;
  log: Logger;
}

const tail = (s: string): string => (s.length > TAIL_BYTES ? `…${s.slice(-TAIL_BYTES)}` : s).trim();

/** The script that says which of sshd and systemd the guest now has (one word a line). */
const PROBE =
  'for p in /usr/sbin/sshd /sbin/sshd; do [ -x "$p" ] && { echo sshd; break; }; done; ' +
  'for p in /lib/systemd/systemd /usr/lib/systemd/systemd; do [ -x "$p" ] && { echo systemd; break; }; done; ' +
  '{ sync || busybox sync; } 2>/dev/null; true';
/** /etc/os-release (else /usr/lib/os-release) with shell builtins only: the image may have no cat. */
const OS_RELEASE =
  'for f in /etc/os-release /usr/lib/os-release; do [ -r "$f" ] && { while IFS= read -r l || [ -n "$l" ]; do ' +
  'printf "%s\\n" "$l"; done < "$f"; exit 0; }; done; exit 1';

/**
 * Installs sshd into `image` (a managed image no VM uses; the caller made it
 * for this and deletes it when this fails): boots a throwaway VM from it, runs
 * the install command its /etc/os-release selects, checks that sshd is there,
 * stops the VM gracefully and makes its root disk the image's rootfs (flattened
 * to raw, fsck-clean), with has_sshd and has_systemd in manifest.json. The VM
 * is deleted however this ends; on failure the image's files are unchanged.
 */
export async function installSshd(
  d: InstallDeps,
  image: ImageRow,
  ctx: OpContext,
): Promise<{ hasSshd: true; hasSystemd: boolean }> {
  const vm = `install-sshd-${randomBytes(4).toString('hex')}`;
  const partial = join(image.dir, `${imageFiles.rootfs}.install-${randomBytes(4).toString('hex')}`);
  const manifestTmp = join(image.dir, `${imageFiles.manifest}.install-${randomBytes(4).toString('hex')}`);
  let created = false;
  try {
    ctx.progress({ stage: 'install', message: `booting a throwaway VM from ${image.name}` });
    created = true;
    await d.vms.create(image.name, vm, ctx);
    const osr = await d.vms.exec(vm, ['sh', '-c', OS_RELEASE], SHORT_TIMEOUT_MS, ctx.signal);
    if (osr.code !== 0)
      throw operationFailed(
        `--install-sshd: image "${image.name}" has no /etc/os-release, so its package manager is unknown`,
        { hint: 'pull without --install-sshd: banger reaches the guest through its agent' },
      );
    const install = sshdInstallCommand(osr.stdout);
    ctx.progress({ stage: 'install', message: `installing openssh-server with ${install.manager}` });
    const r = await d.vms.exec(vm, ['sh', '-c', install.command], INSTALL_TIMEOUT_MS, ctx.signal);
    if (r.code !== 0)
      throw operationFailed(
        `--install-sshd: the ${install.manager} install in the throwaway VM failed (${r.code === null ? 'killed by a signal' : `exit ${r.code}`}): ${tail(r.stderr) || tail(r.stdout) || 'no output'}`,
        { hint: `the guest ran: ${install.command}; check that the host can reach the distribution's mirrors` },
      );
    const probe = await d.vms.exec(vm, ['sh', '-c', PROBE], SHORT_TIMEOUT_MS, ctx.signal);
    const found = new Set(probe.stdout.split('\n').map((l) => l.trim()));
    if (probe.code !== 0 || !found.has('sshd'))
      throw operationFailed(
        `--install-sshd: the ${install.manager} install finished but the guest has no sshd (/usr/sbin/sshd or /sbin/sshd)`,
        { hint: `the guest ran: ${install.command}` },
      );
    ctx.progress({ stage: 'install', message: 'stopping the throwaway VM' });
    await d.vms.stop(vm, ctx);
    const disk = d.vms.rootDisk(vm);
    ctx.progress({ stage: 'install', message: 'storing the result as the image' });
    // Sparse raw: qemu-img leaves zero runs as holes.
    await d.runner.check(['qemu-img', 'convert', '-f', disk.format, '-O', 'raw', disk.path, partial], {
      signal: ctx.signal,
    });
    await checkCleanExt4(d.runner, partial, `the root disk of the --install-sshd VM of ${image.name}`, ctx.signal);
    const manifest = (await readImageManifest(image.dir)) ?? {};
    const hasSystemd = found.has('systemd');
    await writeFile(
      manifestTmp,
      `${JSON.stringify({ ...manifest, has_sshd: true, has_systemd: hasSystemd }, null, 2)}\n`,
    );
    await rename(partial, image.rootfsPath);
    await rename(manifestTmp, join(image.dir, imageFiles.manifest));
    d.log.info('sshd installed into image', { name: image.name, manager: install.manager, has_systemd: hasSystemd });
    return { hasSshd: true, hasSystemd };
  } finally {
    if (created)
      await d.vms.delete(vm, ctx).catch((e: unknown) => {
        if (!(e instanceof AppError && e.code === 'not_found'))
          d.log.error('could not delete the --install-sshd VM', { vm, error: String(e) });
      });
    await removeTree(partial);
    await removeTree(manifestTmp);
  }
}
