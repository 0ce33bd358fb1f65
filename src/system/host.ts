import { access, constants, readFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';

/** Facts about the CPU from /proc/cpuinfo that decide acceleration and timer hints. */
export interface CpuInfo {
  hasVirt: boolean;
  /** TSC frequency in kHz when known (from 'cpu MHz'), for the TCG boot hint. */
  tscKhz: number | undefined;
  modelName: string | undefined;
}

/** Parses /proc/cpuinfo text (first processor decides). */
export function parseCpuInfo(text: string): CpuInfo {
  const first = text.split(/\n\s*\n/)[0] ?? '';
  const field = (name: string): string | undefined => {
    const m = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(first);
    return m?.[1]?.trim();
  };
  const flags = (field('flags') ?? '').split(/\s+/);
  const mhz = Number(field('cpu MHz'));
  return {
    hasVirt: flags.includes('vmx') || flags.includes('svm'),
    tscKhz: Number.isFinite(mhz) && mhz > 0 ? Math.round(mhz * 1000) : undefined,
    modelName: field('model name'),
  };
}

export interface AccelDecision {
  accel: 'kvm' | 'tcg';
  reason: string;
}

/** SPEC §1: KVM only when /dev/kvm is read-write and the CPU advertises vmx/svm. */
export function decideAccel(want: 'auto' | 'kvm' | 'tcg', kvmRw: boolean, cpu: CpuInfo): AccelDecision {
  if (want === 'tcg') return { accel: 'tcg', reason: 'accel = "tcg" in config' };
  const usable = kvmRw && cpu.hasVirt;
  if (want === 'kvm') return { accel: 'kvm', reason: 'accel = "kvm" in config' };
  if (usable) return { accel: 'kvm', reason: '/dev/kvm is usable and the CPU has hardware virtualization' };
  const why = !kvmRw ? '/dev/kvm is missing or not read-write' : 'the CPU advertises neither vmx nor svm';
  return { accel: 'tcg', reason: `${why}: software emulation (TCG)` };
}

/** Read-only probes of the host; nothing here changes it. */
export class HostProbe {
  async cpuInfo(): Promise<CpuInfo> {
    try {
      return parseCpuInfo(await readFile('/proc/cpuinfo', 'utf8'));
    } catch {
      return { hasVirt: false, tscKhz: undefined, modelName: undefined };
    }
  }

  async kvmReadWrite(): Promise<boolean> {
    try {
      await access('/dev/kvm', constants.R_OK | constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  /** systemd-resolved runs here (its runtime dir exists) and resolvectl is installed. */
  async systemdResolved(): Promise<boolean> {
    const dir = await access('/run/systemd/resolve').then(
      () => true,
      () => false,
    );
    return dir && (await this.which('resolvectl')) !== undefined;
  }

  cpuCount(): number {
    return cpus().length;
  }

  memBytes(): number {
    return totalmem();
  }

  /** Absolute path of an executable on PATH (or the path itself if absolute), else undefined. */
  async which(bin: string, pathEnv = process.env.PATH ?? ''): Promise<string | undefined> {
    const candidates = bin.includes('/')
      ? [bin]
      : [...pathEnv.split(delimiter), '/usr/sbin', '/sbin'].map((d) => join(d, bin));
    for (const c of candidates) {
      try {
        await access(c, constants.X_OK);
        return c;
      } catch {
        /* next */
      }
    }
    return undefined;
  }
}
