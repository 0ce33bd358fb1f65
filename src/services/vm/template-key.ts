import { createHash } from 'node:crypto';

/* The key of a warm-start template (issue 17): everything qemu's -incoming needs to match, and
   everything the saved guest took from its host, hashed. A VM restores only from a template whose
   key equals its own; any change (image, kernel, banger or qemu build, spec) means another key. */

/** What the key covers, each as a string or number the caller read from the host. */
export interface TemplateKeyInput {
  /** banger's version with its build id: a template from another banger build is not used. */
  banger: string;
  imageId: string;
  /** The image's rootfs as it is now (size and mtime): `image refresh` rewrites it. */
  rootfs: string;
  assetsVersion: number;
  /** Kernel name and a hash of its kernel, initrd and modules disk. */
  kernel: string;
  /** `qemu --version` and a hash of the qemu binary. */
  qemu: string;
  /** A hash of banger's ssh public key (the work disk's authorized_keys). */
  sshKey: string;
  overlayBytes: number;
  diskBytes: number;
  /** The VMM argv's machine, CPU, memory and device options in order, from a VmmSpec (vmmShape). */
  shape: string[];
}

/** Version of the key's layout: bump when TemplateKeyInput changes meaning. */
const KEY_LAYOUT = 1;

/** Hex sha256 of the input with its fields in a fixed order (48 hex digits: short enough for a dir name). */
export function templateKey(i: TemplateKeyInput): string {
  const fields = [
    KEY_LAYOUT,
    i.banger,
    i.imageId,
    i.rootfs,
    i.assetsVersion,
    i.kernel,
    i.qemu,
    i.sshKey,
    i.overlayBytes,
    i.diskBytes,
    i.shape,
  ];
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex').slice(0, 48);
}

/** Flags whose values make the guest's machine (the rest name per-VM paths, ports and names). */
const SHAPE_FLAGS = new Set(['-M', '-machine', '-accel', '-cpu', '-smp', '-m', '-device']);

/**
 * The machine-shaping part of a VMM argv, in order: machine, accelerator, CPU model, vCPUs, memory,
 * and every -device (bus, drive ids, serials: the set and order -incoming checks), the memory
 * backend without its file, with the
 * per-VM MAC left out, plus each -netdev's type and each -drive's id and format. Paths and ports
 * are not part of it: a restore opens its own.
 */
export function vmmShape(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length - 1; i++) {
    const flag = argv[i] as string;
    const value = argv[i + 1] as string;
    if (flag === '-netdev') out.push(`-netdev=${value.split(',')[0] ?? ''}`);
    else if (flag === '-object') out.push(`-object=${value.replace(/,mem-path=(?:[^,]|,,)*/, '')}`);
    else if (flag === '-drive')
      out.push(
        `-drive=${value
          .split(',')
          .filter((p) => /^(id|format|if|readonly)=/.test(p))
          .join(',')}`,
      );
    else if (SHAPE_FLAGS.has(flag)) out.push(`${flag}=${value.replace(/,mac=[0-9a-f:]+/i, '')}`);
  }
  return out;
}
