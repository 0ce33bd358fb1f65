import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../../config/config.js';
import { formatSize } from '../../config/sizes.js';
import { findImageEntry, findKernelEntry } from '../../catalog/embedded.js';
import { checkCompat } from '../../kernel/compat.js';
import { openStore } from '../../store/db.js';
import { checkFirecrackerVersion } from '../../vmm/firecracker/version.js';
import { ImageRepo } from '../../store/images.js';
import { KernelRepo } from '../../store/kernels.js';
import { VmRepo, type VmRow } from '../../store/vms.js';
import { handlesProblem, readHandlesFile } from '../vm/handles.js';
import { decideAccel, type HostProbe } from '../../system/host.js';
import { vmFiles, type Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { DnsProbe } from '../network/dns.js';
import { networkChecks } from './network.js';
import { vmmRow } from './vmm.js';

export type CheckStatus = 'PASS' | 'WARN' | 'FAIL';

export interface CheckRow {
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export interface DoctorInput {
  paths: Paths;
  host: HostProbe;
  runner: CommandRunner;
  version: string;
  /** Undefined when config.toml did not parse; configError says why. */
  config: Config | undefined;
  configError: string | undefined;
  arch: string;
  /** Host-networking rows (doctor/network.ts); omitted: none (the daemon's startup log, unit tests of the rest). */
  network?: { euid: number; probeDns: (listen: string) => Promise<DnsProbe> };
}

/** Host tools per feature: binary, Debian package, what needs it, whether it is required. */
export const HOST_TOOLS: readonly { bin: string; pkg: string; for: string; required: boolean }[] = [
  { bin: 'qemu-img', pkg: 'qemu-utils', for: 'copy-on-write VM disks', required: true },
  { bin: 'mkfs.ext4', pkg: 'e2fsprogs', for: 'images and work disks', required: true },
  { bin: 'debugfs', pkg: 'e2fsprogs', for: 'image ownership and guest assets', required: true },
  { bin: 'resize2fs', pkg: 'e2fsprogs', for: 'work disks', required: true },
  { bin: 'ssh', pkg: 'openssh-client', for: 'vm run / vm ssh', required: true },
  { bin: 'ssh-keygen', pkg: 'openssh-client', for: "banger's ssh key", required: true },
  { bin: 'mmdebstrap', pkg: 'mmdebstrap', for: 'building the default image', required: false },
  { bin: 'apt-get', pkg: 'apt', for: 'pulling the Debian cloud kernel', required: false },
  { bin: 'dpkg-deb', pkg: 'dpkg', for: 'pulling the Debian cloud kernel', required: false },
  { bin: 'depmod', pkg: 'kmod', for: 'pulling the Debian cloud kernel', required: false },
];

/** mke2fs version from `mkfs.ext4 -V` output ("mke2fs 1.47.0 (5-Feb-2023)"). `-d` needs 1.43+. */
export function parseMke2fsVersion(text: string): [number, number] | undefined {
  const m = /mke2fs (\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** Runs every check; never hangs (each probe has a timeout) and never changes the host. */
export async function runChecks(i: DoctorInput): Promise<CheckRow[]> {
  const rows: CheckRow[] = [];
  rows.push(
    i.arch === 'x64'
      ? { name: 'architecture', status: 'PASS', detail: 'x86_64' }
      : { name: 'architecture', status: 'FAIL', detail: i.arch, fix: 'banger runs on x86_64 Linux hosts only' },
  );
  rows.push({ name: 'banger version', status: 'PASS', detail: i.version });
  rows.push(
    i.config
      ? {
          name: 'config',
          status: 'PASS',
          detail: existsSync(i.paths.configFile) ? i.paths.configFile : 'no config.toml (all defaults)',
        }
      : { name: 'config', status: 'FAIL', detail: i.configError ?? 'invalid', fix: `fix ${i.paths.configFile}` },
  );

  const kvmRw = await i.host.kvmReadWrite();
  const cpu = await i.host.cpuInfo();
  const accel = decideAccel(i.config?.accel ?? 'auto', kvmRw, cpu);
  rows.push(
    accel.accel === 'kvm'
      ? { name: 'hardware virtualization', status: 'PASS', detail: accel.reason }
      : {
          name: 'hardware virtualization',
          status: 'WARN',
          detail: `${accel.reason}; VMs will be many times slower`,
          fix: 'enable VT-x/AMD-V (or nested virtualization) and make /dev/kvm read-write for your user (kvm group)',
        },
  );

  const qemuBin = i.config?.qemuBin ?? 'qemu-system-x86_64';
  const qemuPath = await i.host.which(qemuBin);
  if (!qemuPath)
    rows.push({ name: 'qemu', status: 'FAIL', detail: `${qemuBin} not found`, fix: 'apt-get install qemu-system-x86' });
  else {
    const res = await i.runner.run([qemuPath, '--version'], { timeoutMs: 5000 }).catch(() => undefined);
    rows.push({
      name: 'qemu',
      status: res?.code === 0 ? 'PASS' : 'FAIL',
      detail: res?.stdout.split('\n')[0] ?? `${qemuPath} does not answer --version`,
    });
  }
  const fcBin = await i.host.which(i.config?.firecrackerBin ?? 'firecracker');
  if (fcBin) {
    const res = await i.runner.run([fcBin, '--version'], { timeoutMs: 5000 }).catch(() => undefined);
    const v = checkFirecrackerVersion(res?.stdout ?? '');
    rows.push({ name: 'firecracker', status: v.ok ? 'PASS' : 'WARN', detail: v.message ?? `${fcBin} ${v.version}` });
  }
  if (i.config)
    rows.push(
      await vmmRow({
        config: i.config,
        paths: i.paths,
        accel,
        runner: i.runner,
        which: (bin) => i.host.which(bin),
        hasStore: existsSync(i.paths.dbFile),
      }),
    );

  for (const t of HOST_TOOLS) {
    const path = await i.host.which(t.bin);
    if (!path) {
      rows.push({
        name: t.bin,
        status: t.required ? 'FAIL' : 'WARN',
        detail: `not found (needed for ${t.for})`,
        fix: `apt-get install ${t.pkg}`,
      });
      continue;
    }
    if (t.bin === 'mkfs.ext4') {
      const res = await i.runner.run([path, '-V'], { timeoutMs: 5000 }).catch(() => undefined);
      const v = parseMke2fsVersion(`${res?.stdout ?? ''}${res?.stderr ?? ''}`);
      const ok = v !== undefined && (v[0] > 1 || (v[0] === 1 && v[1] >= 43));
      rows.push({
        name: t.bin,
        status: ok ? 'PASS' : 'FAIL',
        detail: v ? `e2fsprogs ${v.join('.')}${ok ? ' (supports -d)' : ' (too old for -d)'}` : 'unknown version',
        ...(ok ? {} : { fix: 'install e2fsprogs 1.43 or newer' }),
      });
      continue;
    }
    rows.push({ name: t.bin, status: 'PASS', detail: path });
  }

  if (i.config && i.network)
    rows.push(
      ...(await networkChecks({
        config: i.config,
        runner: i.runner,
        euid: i.network.euid,
        which: (bin) => i.host.which(bin),
        probeDns: i.network.probeDns,
        resolved: () => i.host.systemdResolved(),
      })),
    );
  rows.push(...storeChecks(i));
  rows.push(...(await handlesChecks(i)));
  if (i.config) {
    const d = i.config.vmDefaults;
    const p = i.config.provenance;
    rows.push({
      name: 'vm defaults',
      status: 'PASS',
      detail: `vcpu ${d.vcpu} (${p.vcpu}), memory ${d.memoryMib} MiB (${p.memoryMib}), disk ${formatSize(d.diskSizeBytes)} (${p.diskSizeBytes}), overlay ${formatSize(d.systemOverlaySizeBytes)} (${p.systemOverlaySizeBytes})`,
    });
  }
  return rows;
}

function storeChecks(i: DoctorInput): CheckRow[] {
  const rows: CheckRow[] = [];
  const imageName = i.config?.defaultImageName ?? 'debian-bookworm';
  const kernelName = i.config?.defaultKernelName ?? 'debian-bookworm-cloud';
  if (!existsSync(i.paths.dbFile)) {
    rows.push({ name: 'state store', status: 'PASS', detail: `${i.paths.dbFile} (created on first use)` });
    rows.push(pullable('default image', imageName, findImageEntry(imageName) !== undefined));
    rows.push(pullable('default kernel', kernelName, findKernelEntry(kernelName) !== undefined));
    return rows;
  }
  try {
    const db = openStore(i.paths.dbFile, { readonly: true });
    try {
      // Opening does not read the file; a query does (a file that is not a database fails here, before any PASS row).
      db.prepare('SELECT count(*) FROM sqlite_master').get();
      rows.push({ name: 'state store', status: 'PASS', detail: i.paths.dbFile });
      const img = new ImageRepo(db).byName(imageName);
      rows.push(
        img
          ? { name: 'default image', status: 'PASS', detail: `${imageName} (${img.id.slice(0, 12)})` }
          : pullable('default image', imageName, findImageEntry(imageName) !== undefined),
      );
      if (img) {
        rows.push(
          img.workSeedPath
            ? { name: 'work-seed', status: 'PASS', detail: img.workSeedPath }
            : {
                name: 'work-seed',
                status: 'WARN',
                detail: `${imageName} has no work-seed: /root starts empty`,
                fix: 'rebuild the image',
              },
        );
      }
      const k = new KernelRepo(db).get(kernelName);
      rows.push(
        k
          ? { name: 'default kernel', status: 'PASS', detail: `${kernelName} ${k.version} (${k.format})` }
          : pullable('default kernel', kernelName, findKernelEntry(kernelName) !== undefined),
      );
      if (k) {
        const problem = checkCompat(
          k.name,
          { format: k.format, pvhNote: k.traits.pvhNote ?? false, virtioMmio: k.traits.virtioMmio ?? 'unknown' },
          k.hasInitrd,
          'qemu',
        );
        rows.push(
          problem
            ? { name: 'default kernel boots', status: 'FAIL', detail: problem.message, fix: problem.hint ?? '' }
            : {
                name: 'default kernel boots',
                status: 'PASS',
                detail: `qemu can boot ${k.name} (virtio-mmio: ${k.traits.virtioMmio ?? 'unknown'})`,
              },
        );
      }
    } finally {
      db.close();
    }
  } catch (e) {
    rows.push({
      name: 'state store',
      status: 'FAIL',
      detail: `${i.paths.dbFile}: ${(e as Error).message}`,
      fix: 'move the state directory aside and retry',
    });
  }
  return rows;
}

/** A corrupt handles.json (SPEC §2) makes the daemon fall back to the store, or lose track of a VMM. */
async function handlesChecks(i: DoctorInput): Promise<CheckRow[]> {
  if (!existsSync(i.paths.dbFile)) return [];
  let vms: VmRow[];
  try {
    const db = openStore(i.paths.dbFile, { readonly: true });
    try {
      vms = new VmRepo(db).list();
    } finally {
      db.close();
    }
  } catch {
    return []; // storeChecks reports an unreadable store
  }
  if (vms.length === 0) return [];
  const bad: string[] = [];
  for (const vm of vms) {
    const f = await readHandlesFile(join(i.paths.vmDir(vm.id), vmFiles.handles));
    if (f.state === 'corrupt') bad.push(`${vm.name}: ${handlesProblem(f.problem, vm.handles !== undefined, vm.id)}`);
  }
  if (bad.length === 0)
    return [
      {
        name: 'vm handles',
        status: 'PASS',
        detail: `${vms.length} VM${vms.length > 1 ? 's' : ''}; every handles.json is readable or absent`,
      },
    ];
  return [
    {
      name: 'vm handles',
      status: 'WARN',
      detail: bad.join('; '),
      fix: 'restart each VM named (`banger vm restart NAME`) to rewrite its handles.json; where the store has no copy, stop a VMM that still runs by hand first',
    },
  ];
}

function pullable(what: string, name: string, inCatalog: boolean): CheckRow {
  return inCatalog
    ? { name: what, status: 'PASS', detail: `${name}: not present yet; made on first use from the catalog` }
    : {
        name: what,
        status: 'FAIL',
        detail: `${name}: not present and not in the catalog`,
        fix: `set default_${what.split(' ')[1]}_name in config.toml to an existing one`,
      };
}
