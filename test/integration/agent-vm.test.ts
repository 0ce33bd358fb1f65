/**
 * Integration (network: user mode with restrict=on, loopback only): the guest
 * agent in real VMs under qemu, reached through the VM's virtio-serial Unix
 * socket (Paths.agentSocket) with the host AgentClient: VMs are made through
 * the real CLI and the test connects to the socket itself (exec has no CLI
 * yet; agent-use.test.ts covers vm health, vm ports and vm stop).
 *   - the default image (systemd): the agent runs as a unit;
 *   - a busybox-only image (no systemd, no sshd), pushed to a local registry:
 *     banger-init stays PID 1, sets the machine up and runs the agent.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { after, before, test } from 'node:test';
import { AgentClient } from '../../src/agent/client.js';
import type { ExitStatus } from '../../src/agent/payloads.js';
import { buildInitramfs, INITRAMFS_VERSION } from '../../src/kernel/initramfs.js';
import { loadOrder, parseModulesBuiltin, parseModulesDep } from '../../src/kernel/modules-dep.js';
import { modulesDiskSource } from '../../src/services/kernel/initramfs-refresh.js';
import { readKernelDir } from '../../src/services/kernel/manifest.js';
import { NodeRunner } from '../../src/system/node-runner.js';
import { guestBinary, kernelFiles, Paths } from '../../src/system/paths.js';
import { BUSYBOX, busyboxTar } from '../helpers/guest-images.js';
import { TestHome } from '../helpers/home.js';
import { LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [...missingTools(DEFAULT_VM_TOOLS), ...(existsSync(BUSYBOX) ? [] : [BUSYBOX])],
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod busybox-static',
);
const skipRegistry = skip || requirements(missingTools(['docker-registry']), 'apt install docker-registry');

const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
let home: TestHome;

before(() => {
  if (!skip) home = new TestHome('banger-it-agentvm-');
});

after(async () => {
  if (!skip) await home.cleanup();
});

async function vmId(name: string): Promise<string> {
  const r = await home.banger(['vm', 'show', name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { id: string }).id;
}

/**
 * Connects the host AgentClient to a VM's agent socket. Until the guest opens its port, qemu leaves
 * the HELLO in the socket, so one connection with a long handshake timeout covers the boot.
 */
async function connectAgent(id: string, timeoutMs: number): Promise<AgentClient> {
  const sock = new Paths(home.env, process.getuid?.() ?? 0).agentSocket(id);
  const deadline = Date.now() + 30_000;
  while (!existsSync(sock)) {
    assert.ok(Date.now() < deadline, `qemu did not make the agent socket ${sock}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const stream = createConnection(sock);
  await new Promise<void>((resolve, reject) => {
    stream.once('connect', resolve);
    stream.once('error', reject);
  });
  return AgentClient.connect(stream, { timeoutMs, label: `the agent of VM ${id}` });
}

async function run(client: AgentClient, script: string): Promise<{ out: string; err: string; status: ExitStatus }> {
  const r = client.exec({ argv: ['sh', '-c', script], env: ENV });
  const [out, err, status] = await Promise.all([text(r.stdout), text(r.stderr), r.exit]);
  return { out, err, status };
}

test(
  'a VM of the default image (systemd) answers the agent over virtio-serial: health, and exec output and exit status',
  { skip },
  async (t) => {
    const t0 = Date.now();
    const r = await home.banger(['vm', 'create', '--name', 'agentvm']);
    assert.equal(r.code, 0, r.stderr);
    const client = await connectAgent(await vmId('agentvm'), 60_000);
    try {
      const health = await client.health();
      assert.match(health.name, /banger-agent/);
      assert.equal(client.agent.version, 2);
      const hi = await run(client, 'echo hi; exit 7');
      t.diagnostic(`default image: create to exec result ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      assert.deepEqual(hi, { out: 'hi\n', err: '', status: { kind: 'exited', code: 7 } });
      // systemd stays PID 1 and runs the agent as its unit, which was started from the injected file.
      const unit = await run(client, 'cat /proc/1/comm; systemctl is-active banger-agent.service; hostname');
      assert.deepEqual(unit, { out: 'systemd\nactive\nagentvm\n', err: '', status: { kind: 'exited', code: 0 } });
    } finally {
      client.close();
    }
    const d = await home.banger(['vm', 'delete', 'agentvm']);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(agentSockets(), [], 'delete removes the agent socket');
  },
);

/**
 * Creates VM `name` of an image without sshd and runs `fn` with its agent: the create waits for the
 * agent's health only (no sshd to wait for), then the VM is deleted. The daemon closed its boot
 * connection, so the test's own connection is the one qemu serves.
 */
async function withAgentOnlyVm(name: string, image: string, fn: (client: AgentClient) => Promise<void>): Promise<void> {
  await home.banger(['vm', 'delete', name]); // one an earlier run left in a kept home (BANGER_TEST_HOME)
  const create = await home.banger(['vm', 'create', '--name', name, '--image', image]);
  assert.equal(create.code, 0, create.stderr);
  try {
    const client = await connectAgent(await vmId(name), 120_000);
    try {
      await fn(client);
    } finally {
      client.close();
    }
  } finally {
    const d = await home.banger(['vm', 'delete', name]);
    assert.equal(d.code, 0, d.stderr);
  }
  assert.deepEqual(home.qemuPids(), [], 'no qemu left');
  assert.deepEqual(agentSockets(), [], 'no agent socket left');
}

const agentSockets = (): string[] => readdirSync(home.runtimeDir).filter((f) => f.endsWith('.agent'));

/**
 * Turns an image's kernel copy into what an older banger left: an initramfs without virtio_console
 * and a manifest without initramfs_version (the kernel dir shares the manifest by a hard link).
 */
async function makeOldInitramfs(dir: string): Promise<void> {
  const files = await readKernelDir(dir);
  assert.ok(files.modulesDisk);
  const src = await modulesDiskSource(
    files.modulesDisk,
    files.manifest.version,
    join(home.root, 'old-initramfs'),
    new NodeRunner(),
  ).load();
  const order = loadOrder(parseModulesDep(src.depText), parseModulesBuiltin(src.builtinText ?? ''), [
    'virtio_mmio',
    'virtio_blk',
    'virtio_net',
    'vsock',
    'vmw_vsock_virtio_transport',
  ]);
  const data = await src.read(order);
  const modules = order.map((path, i) => ({ path, data: data[i] as Buffer }));
  const init = readFileSync(guestBinary('banger-init'));
  writeFileSync(join(dir, kernelFiles.initrd), buildInitramfs({ release: files.manifest.version, init, modules }));
  const { initramfs_version: _v, ...old } = files.manifest;
  writeFileSync(join(dir, kernelFiles.manifest), JSON.stringify({ ...old, initramfs_modules: order }));
}

test(
  'a busybox-only image (no systemd, no sshd) boots with banger-init as PID 1, set up from banger.*, and the agent answers exec',
  { skip: skipRegistry },
  async (t) => {
    // A home kept across runs (BANGER_TEST_HOME) may hold it from an earlier run.
    await home.banger(['vm', 'delete', 'bbvm']);
    await home.banger(['vm', 'delete', 'oldkernel']);
    await home.banger(['image', 'delete', 'bb']);
    const reg = await LocalRegistry.start();
    try {
      const layer = await busyboxTar();
      await pushImage(reg.port, 'test/busybox', 'v1', [{ tar: layer, compression: 'gzip' }]);
      const pull = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/busybox:v1`, '--name', 'bb']);
      assert.equal(pull.code, 0, pull.stderr);
    } finally {
      reg.stop();
    }
    const t0 = Date.now();
    await withAgentOnlyVm('bbvm', 'bb', async (client) => {
      const hi = await run(client, 'echo hi; exit 7');
      t.diagnostic(`busybox image: create to exec result ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      assert.deepEqual(hi, { out: 'hi\n', err: '', status: { kind: 'exited', code: 7 } });
      const sys = await run(
        client,
        [
          'cat /proc/1/cmdline | busybox tr "\\0" " "; echo',
          'busybox hostname',
          'busybox awk \'$2 == "/root" || $2 == "/run" || $2 == "/dev/pts" || $2 == "/proc" { print $2, $3 }\' /proc/mounts | busybox sort',
          "busybox ip -4 -o addr show | busybox awk '{ print $2, $4 }' | busybox sort",
          'busybox ip route | busybox grep ^default',
          'cat /etc/resolv.conf',
        ].join('; '),
      );
      assert.equal(sys.err, '');
      assert.deepEqual(sys.out.split('\n'), [
        '/init ',
        'bbvm',
        '/dev/pts devpts',
        '/proc proc',
        '/root ext4',
        '/run tmpfs',
        'eth0 10.0.2.15/24',
        'lo 127.0.0.1/8',
        'default via 10.0.2.2 dev eth0 ',
        'nameserver 10.0.2.3',
        '',
      ]);
      // PID 1 reaps: an orphan that exits leaves no zombie behind.
      const reap = await run(
        client,
        '(busybox sleep 0.2 &) ; busybox sleep 1; busybox ps -o stat,comm | busybox grep -c "^Z" || true',
      );
      assert.equal(reap.out.trim(), '0', 'no zombie');
    });
  },
);

test(
  'a kernel whose initramfs an older banger made (no virtio_console) is regenerated when booted: the agent of a busybox VM answers',
  { skip: skipRegistry },
  async () => {
    // Images without udev rely on the initramfs alone to load virtio_console.
    const img = await home.banger(['image', 'show', 'bb', '--json']);
    assert.equal(img.code, 0, `the busybox test made image bb: ${img.stderr}`);
    const kdir = join(home.stateDir, 'images', (JSON.parse(img.stdout) as { id: string }).id, 'kernel');
    await makeOldInitramfs(kdir);
    await withAgentOnlyVm('oldkernel', 'bb', async (client) => {
      assert.deepEqual(await run(client, 'echo hi; exit 7'), {
        out: 'hi\n',
        err: '',
        status: { kind: 'exited', code: 7 },
      });
    });
    const m = (await readKernelDir(kdir)).manifest;
    assert.equal(m.initramfs_version, INITRAMFS_VERSION);
    assert.ok(
      m.initramfs_modules?.some((p) => p.endsWith('/virtio_console.ko')),
      m.initramfs_modules?.join(' '),
    );
    assert.match(home.daemonLog(), /regenerating an older initramfs/);
  },
);

test(
  'a busybox VM (banger-init as PID 1) stops gracefully through the agent: unsynced data survives, no journal replay at the next boot',
  { skip: skipRegistry },
  async () => {
    const img = await home.banger(['image', 'show', 'bb']);
    assert.equal(img.code, 0, `the busybox test made image bb: ${img.stderr}`);
    await home.banger(['vm', 'delete', 'bbstop']); // one an earlier run left in a kept home (BANGER_TEST_HOME)
    const create = await home.banger(['vm', 'create', '--name', 'bbstop', '--image', 'bb']);
    assert.equal(create.code, 0, create.stderr);
    const id = await vmId('bbstop');
    let client = await connectAgent(id, 120_000);
    try {
      // No sync: only an orderly poweroff (unmount, or remount read-only) keeps what is still in the page cache.
      const w = await run(client, 'echo kept > /root/data; echo kept > /data-on-root');
      assert.deepEqual(w.status, { kind: 'exited', code: 0 }, w.err);
    } finally {
      client.close();
    }
    const before = home.daemonLog().length;
    const stop = await home.banger(['vm', 'stop', 'bbstop']);
    assert.equal(stop.code, 0, stop.stderr);
    const log = home.daemonLog().slice(before);
    assert.match(log, /the guest agent is powering the VM off/, log);
    const consoleLog = (await home.banger(['vm', 'logs', 'bbstop'])).stdout; // checked last: the data tells more

    const start = await home.banger(['vm', 'start', 'bbstop']);
    assert.equal(start.code, 0, start.stderr);
    client = await connectAgent(id, 120_000);
    try {
      const r = await run(client, 'cat /root/data /data-on-root; busybox dmesg | busybox grep "EXT4-fs" || true');
      assert.equal(r.status.kind, 'exited', r.err);
      assert.match(r.out, /^kept\nkept\n/, r.out);
      assert.doesNotMatch(r.out, /recovery complete/, `the stop was not graceful: a journal was replayed\n${r.out}`);
    } finally {
      client.close();
    }
    assert.match(consoleLog, /banger-init: powering off[\s\S]*reboot: Power down/, 'banger-init powered off by itself');
    assert.doesNotMatch(consoleLog, /banger-init: unmount|remount \/ read-only/, 'every filesystem was unmounted');
    const d = await home.banger(['vm', 'delete', 'bbstop']);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(home.qemuPids(), [], 'no qemu left');
  },
);
