/**
 * Integration (no network, no VM boots): a banger home whose every path has a
 * space and a comma in it. The real CLI and daemon import a kernel, register
 * an image and create a VM's disks without starting it (ssh-keygen, qemu-img,
 * resize2fs, debugfs on those paths); qemu then parses the option strings that
 * name those files (`-M none`: no machine, no guest code runs); the daemon's
 * state files are private.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { VmmSpec } from '../../src/vmm/driver.js';
import { qemuArgv } from '../../src/vmm/qemu/argv.js';
import { qmpCommand } from '../../src/vmm/qemu/qmp.js';
import { NodeRunner } from '../../src/system/node-runner.js';
import { sh, TestHome } from '../helpers/home.js';
import { missingTools, requirements } from '../helpers/requirements.js';
import { fakeBzImage } from '../helpers/fake-kernel.js';

const ODD = 'a b,c';
const skip = requirements(
  missingTools(['mkfs.ext4', 'debugfs', 'e2fsck', 'resize2fs', 'qemu-img', 'ssh-keygen']),
  'apt install e2fsprogs qemu-utils openssh-client',
);
/** Only the check that qemu parses the option strings needs qemu itself. */
const qemuSkip = requirements(missingTools(['qemu-system-x86_64']), 'apt install qemu-system-x86');

let home: TestHome;
let work: string;

function ok(r: { code: number; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

before(() => {
  if (skip) return;
  home = new TestHome(`banger ${ODD}-`);
  assert.ok(home.root.includes(ODD));
  work = join(home.root, `in ${ODD}`);
  mkdirSync(join(work, 'tree', 'root'), { recursive: true });
  mkdirSync(join(work, 'tree', 'etc'), { recursive: true });
  writeFileSync(join(work, 'tree', 'root', '.profile'), 'from the seed\n');
  writeFileSync(join(work, 'tree', 'etc', 'os-release'), 'ID=debian\n');
});

after(async () => {
  if (!skip) await home.cleanup();
});

test(
  `a banger home with "${ODD}" in every path: kernel import, image register, vm create --no-start`,
  { skip },
  async () => {
    writeFileSync(join(work, 'vmlinuz'), fakeBzImage('9.9.9-odd'));
    ok(await home.banger(['kernel', 'import', 'odd-k', '--kernel', join(work, 'vmlinuz')]), 'kernel import');

    const rootfs = join(work, 'rootfs.ext4');
    const seed = join(work, 'seed.ext4');
    ok(sh(['mkfs.ext4', '-q', '-F', '-d', join(work, 'tree'), rootfs, '64M']), 'mkfs rootfs');
    ok(sh(['mkfs.ext4', '-q', '-F', '-d', join(work, 'tree', 'root'), seed, '32M']), 'mkfs seed');
    ok(
      await home.banger([
        'image',
        'register',
        'odd-img',
        '--rootfs',
        rootfs,
        '--work-seed',
        seed,
        '--kernel-ref',
        'odd-k',
      ]),
      'image register',
    );

    ok(
      await home.banger([
        'vm',
        'create',
        '--name',
        'odd-vm',
        '--image',
        'odd-img',
        '--disk-size',
        '128M',
        '--no-start',
      ]),
      'vm create',
    );
    const vms = JSON.parse(ok(await home.banger(['vm', 'list', '--json']), 'vm list')) as {
      id: string;
      name: string;
      state: string;
    }[];
    const vm = vms.find((v) => v.name === 'odd-vm');
    assert.equal(vm?.state, 'stopped');
    const vmDir = join(home.stateDir, 'vms', vm.id);
    const overlay = join(vmDir, 'root.qcow2');
    const workDisk = join(vmDir, 'work.ext4');

    // qemu-img wrote the backing file name whole.
    const info = JSON.parse(ok(sh(['qemu-img', 'info', '--output=json', overlay]), 'qemu-img info')) as {
      'backing-filename'?: string;
    };
    assert.equal(info['backing-filename'], rootfs);

    // The work disk grew from the seed, and debugfs injected the key from a host file in the VM dir.
    const pub = readFileSync(join(home.stateDir, 'ssh', 'id_ed25519.pub'), 'utf8');
    assert.equal(
      ok(sh(['debugfs', '-R', 'cat /.ssh/authorized_keys', workDisk]), 'debugfs cat'),
      pub.endsWith('\n') ? pub : `${pub}\n`,
    );
    assert.equal(ok(sh(['debugfs', '-R', 'cat /.profile', workDisk]), 'debugfs cat'), 'from the seed\n');
    ok(sh(['e2fsck', '-fn', workDisk]), 'e2fsck work disk');
    assert.equal(
      readdirSync(vmDir).filter((f) => f.endsWith('.authorized_keys')).length,
      0,
      'the key staging file is gone',
    );

    // The daemon's state: a private dir, a private database.
    assert.equal(statSync(home.stateDir).mode & 0o777, 0o700);
    for (const f of ['banger.db', 'banger.db-wal', 'banger.db-shm']) {
      const p = join(home.stateDir, f);
      if (f === 'banger.db' || existsSync(p)) assert.equal(statSync(p).mode & 0o777, 0o600, f);
    }
    assert.equal(statSync(home.runtimeDir).mode & 0o777, 0o700);

    if (qemuSkip === false) await qemuParses(vm.id, overlay, workDisk);

    ok(await home.banger(['vm', 'delete', 'odd-vm']), 'vm delete');
    ok(await home.banger(['image', 'delete', 'odd-img']), 'image delete');
    ok(await home.banger(['kernel', 'rm', 'odd-k']), 'kernel rm');
  },
);

/**
 * The -drive, -chardev and -qmp option strings banger builds for this VM,
 * given to a real qemu with no machine (-M none): it opens the disks, the
 * console file and the QMP socket at exactly these paths, then quits.
 */
async function qemuParses(id: string, overlay: string, workDisk: string): Promise<void> {
  const vmDir = join(home.stateDir, 'vms', id);
  const spec: VmmSpec = {
    id,
    name: 'odd-vm',
    vcpu: 1,
    memoryMib: 64,
    accel: 'tcg',
    kernelPath: join(work, 'vmlinuz'),
    initrdPath: undefined,
    cmdline: 'console=ttyS0',
    disks: [
      { id: 'root', path: overlay, format: 'qcow2', readonly: false, serial: 'banger-root' },
      { id: 'work', path: workDisk, format: 'raw', readonly: true, serial: 'banger-work' },
    ],
    net: { mode: 'user', sshPort: 1, allowOutbound: false, mac: '52:54:00:00:00:01' },
    consoleLog: join(vmDir, `console ${ODD}.log`),
    controlSocket: join(home.runtimeDir, `q ${ODD}.qmp`),
    vmmLog: join(vmDir, 'probe-vmm.log'),
  };
  const full = qemuArgv('qemu-system-x86_64', spec);
  const values = (flag: string): string[] => full.flatMap((a, i) => (a === flag ? [full[i + 1] as string] : []));
  const argv = ['qemu-system-x86_64', '-M', 'none', '-nodefaults', '-nographic', '-monitor', 'none', '-S'];
  for (const flag of ['-chardev', '-qmp', '-drive']) for (const v of values(flag)) argv.push(flag, v);
  const pid = await new NodeRunner().spawnDetached(argv, { logFile: spec.vmmLog });
  try {
    for (let i = 0; i < 200 && !existsSync(spec.controlSocket); i++) {
      assert.equal(sh(['kill', '-0', String(pid)]).code, 0, `qemu exited: ${readFileSync(spec.vmmLog, 'utf8')}`);
      await sleep(50);
    }
    const blocks = (await qmpCommand(spec.controlSocket, 'query-block')) as {
      device: string;
      inserted?: { file: string };
    }[];
    const files = Object.fromEntries(blocks.map((b) => [b.device, b.inserted?.file]));
    assert.deepEqual(files, { root: overlay, work: workDisk });
    assert.ok(existsSync(spec.consoleLog), 'the console file was created under its full name');
    await qmpCommand(spec.controlSocket, 'quit');
    for (let i = 0; i < 100 && sh(['kill', '-0', String(pid)]).code === 0; i++) await sleep(50);
  } finally {
    sh(['kill', '-9', String(pid)]);
  }
}
