/**
 * The B3 peer: boots banger's default kernel and a copy of the default image's
 * rootfs with a bare qemu command line (built by the same argv builder, so
 * only banger's own host-side work differs) and times start → `ssh true`.
 * Prints one duration in ms per run. Run by scripts/bench.ts with the bench
 * home's XDG variables. Network: user mode, restrict=on, loopback only.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootArgs, DISK_SERIALS, macFromId } from '../src/guest/bootargs.js';
import { readKernelDir } from '../src/services/kernel/manifest.js';
import { parseCpuInfo } from '../src/system/host.js';
import { freeLoopbackPort } from '../src/system/net.js';
import { qemuArgv, USER_NET } from '../src/vmm/qemu/argv.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] ?? 3);

async function main(): Promise<void> {
  const show = spawnSync(
    process.execPath,
    [join(repo, 'bin', 'banger.js'), 'image', 'show', 'debian-bookworm', '--json'],
    { encoding: 'utf8' },
  );
  const img = JSON.parse(show.stdout) as { rootfs: string; dir: string };
  const kernel = await readKernelDir(join(img.dir, 'kernel'));
  const stateDir = join(process.env.XDG_STATE_HOME as string, 'banger');
  const key = join(stateDir, 'ssh', 'id_ed25519');
  const tsc = parseCpuInfo(readFileSync('/proc/cpuinfo', 'utf8')).tscKhz;
  for (let i = 0; i < runs; i++) {
    const dir = mkdtempSync(join(stateDir, 'tmp', 'bare-'));
    spawnSync('cp', ['--sparse=always', img.rootfs, join(dir, 'root.ext4')]);
    copyFileSync(join(img.dir, 'work-seed.ext4'), join(dir, 'work.ext4'));
    writeFileSync(join(dir, 'key'), readFileSync(`${key}.pub`));
    spawnSync('debugfs', ['-w', '-f', '-', join(dir, 'work.ext4')], {
      input: `write ${join(dir, 'key')} /.ssh/authorized_keys\nsif /.ssh/authorized_keys mode 0100600\n`,
    });
    const port = await freeLoopbackPort();
    const argv = qemuArgv('qemu-system-x86_64', {
      id: 'bare',
      name: 'bare',
      vcpu: 1,
      memoryMib: 1024,
      accel: 'tcg',
      kernelPath: kernel.kernel,
      initrdPath: kernel.initrd,
      cmdline: bootArgs({
        hostname: 'bare',
        ip: USER_NET.guestIp,
        gateway: USER_NET.gateway,
        dns: USER_NET.dns,
        mac: macFromId('0a0b0c'),
        hasModulesDisk: kernel.modulesDisk !== undefined,
        tscKhz: tsc,
      }),
      disks: [
        { id: 'root', path: join(dir, 'root.ext4'), format: 'raw', readonly: false, serial: DISK_SERIALS.root },
        { id: 'work', path: join(dir, 'work.ext4'), format: 'raw', readonly: false, serial: DISK_SERIALS.work },
        ...(kernel.modulesDisk
          ? [
              {
                id: 'modules',
                path: kernel.modulesDisk,
                format: 'raw' as const,
                readonly: true,
                serial: DISK_SERIALS.modules,
              },
            ]
          : []),
      ],
      net: { mode: 'user', sshPort: port, allowOutbound: false, mac: macFromId('0a0b0c') },
      consoleLog: join(dir, 'console.log'),
      controlSocket: join(dir, 'q.sock'),
      vmmLog: join(dir, 'vmm.log'),
    });
    const t0 = Date.now();
    const q = spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' });
    let ok = false;
    while (Date.now() - t0 < 180_000 && !ok) {
      const r = spawnSync('ssh', [
        '-F',
        'none',
        '-i',
        key,
        '-p',
        String(port),
        '-o',
        'StrictHostKeyChecking=no',
        '-o',
        'UserKnownHostsFile=/dev/null',
        '-o',
        'BatchMode=yes',
        '-o',
        'ConnectTimeout=2',
        '-o',
        'LogLevel=ERROR',
        'root@127.0.0.1',
        'true',
      ]);
      ok = r.status === 0;
      if (!ok) await new Promise((res) => setTimeout(res, 250));
    }
    const ms = Date.now() - t0;
    q.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    if (!ok) throw new Error('bare boot did not reach ssh');
    console.log(ms);
  }
}

void main().catch((e: unknown) => {
  console.error(String(e));
  process.exit(1);
});
