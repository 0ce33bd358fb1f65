/**
 * Integration (network: user mode with restrict=on, loopback only): warm start (issue 17) with real
 * qemu. A busybox-only image (banger-init as PID 1 and the agent: the shortest boot) pushed to a local
 * registry; `image warm` makes its template by a throwaway boot; a VM's first start restores from it;
 * a corrupt template falls back to a cold boot; deleting the image removes its templates. kill -9 of
 * the daemon while a template is made and while a VM is restored converges (test pause points).
 * Last, a Debian image with systemd and sshd (one image, one template, two restores): the restored
 * guests answer ssh and differ in hostname, host key, /dev/urandom output and machine-id.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BUSYBOX, busyboxTar } from '../helpers/guest-images.js';
import { TEST_CONFIG, TestHome } from '../helpers/home.js';
import { debianBaseTar, LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [...missingTools([...DEFAULT_VM_TOOLS, 'docker-registry']), ...(existsSync(BUSYBOX) ? [] : [BUSYBOX])],
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod busybox-static docker-registry',
);

let home: TestHome;
let reg: LocalRegistry | undefined;

before(async () => {
  if (skip) return;
  home = new TestHome('banger-it-warm-');
  reg = await LocalRegistry.start();
});

after(async () => {
  reg?.stop();
  if (!skip) await home.cleanup();
});

interface Shown {
  warm_start?: string;
  boot: { spans: { name: string }[] } | null;
}

async function show(name: string): Promise<Shown> {
  const r = await home.banger(['vm', 'show', name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Shown;
}

const templatesDir = (): string => join(home.stateDir, 'templates');

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !cond()) await new Promise((r) => setTimeout(r, 100));
  assert.ok(cond(), `timed out waiting for ${what}\ndaemon log tail:\n${home.daemonLog().slice(-3000)}`);
}

test(
  'warm start: image warm makes a template; the first start of a VM restores from it and works; a corrupt template boots cold; image delete removes the templates',
  { skip, timeout: 20 * 60_000 },
  async (t) => {
    await home.banger(['image', 'delete', 'bbw']); // a kept home (BANGER_TEST_HOME) may have it
    await pushImage((reg as LocalRegistry).port, 'test/busybox', 'v1', [
      { tar: await busyboxTar(), compression: 'gzip' },
    ]);
    const pull = await home.banger([
      'image',
      'pull',
      `127.0.0.1:${(reg as LocalRegistry).port}/test/busybox:v1`,
      '--name',
      'bbw',
    ]);
    assert.equal(pull.code, 0, pull.stderr);

    let t0 = Date.now();
    const warm = await home.banger(['image', 'warm', 'bbw', '--json'], 600_000);
    assert.equal(warm.code, 0, warm.stderr);
    t.diagnostic(`image warm (throwaway boot + save): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const made = JSON.parse(warm.stdout) as { built: boolean; template: { key: string; serving: boolean } };
    assert.equal(made.built, true);
    const again = await home.banger(['image', 'warm', 'bbw', '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { built: boolean }).built, false, 'a current template is not made again');
    const shown = await home.banger(['image', 'show', 'bbw', '--json']);
    const templates = (JSON.parse(shown.stdout) as { templates: { key: string; serving: boolean }[] }).templates;
    assert.deepEqual(
      templates.map((x) => [x.key, x.serving]),
      [[made.template.key, true]],
      'image show lists the template',
    );
    assert.deepEqual(home.qemuPids(), [], 'the throwaway boot left no qemu');
    assert.deepEqual(readdirSync(join(home.stateDir, 'vms')), [], 'nor a VM dir');

    // A restored VM: vm show says so, the boot has a restore span, and the guest answers.
    t0 = Date.now();
    const c = await home.banger(['vm', 'create', '--name', 'w1', '--image', 'bbw'], 600_000);
    assert.equal(c.code, 0, c.stderr);
    t.diagnostic(`vm create from the template: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const w1 = await show('w1');
    assert.match(w1.warm_start ?? '', /^restored from template /, JSON.stringify(w1));
    assert.ok(
      w1.boot?.spans.some((s) => s.name === 'restore'),
      'the boot has a restore span',
    );
    const hi = await home.banger(['vm', 'ssh', 'w1', '--', 'sh', '-c', 'echo hi; exit 3']);
    assert.equal(hi.stdout, 'hi\n', hi.stderr);
    assert.equal(hi.code, 3, hi.stderr);
    // A restart boots cold (the disks no longer match the saved memory) and works.
    const rs = await home.banger(['vm', 'restart', 'w1'], 600_000);
    assert.equal(rs.code, 0, rs.stderr);
    const after1 = await show('w1');
    assert.ok(!after1.boot?.spans.some((s) => s.name === 'restore'), 'a restart does not restore');

    // --cold opts out.
    const cold = await home.banger(['vm', 'create', '--name', 'w3', '--image', 'bbw', '--cold', '--no-start']);
    assert.equal(cold.code, 0, cold.stderr);
    assert.match((await show('w3')).warm_start ?? '', /^cold: /);

    // A corrupt template: the restore fails, the VM boots cold with a warning and works.
    writeFileSync(join(templatesDir(), made.template.key, 'state.bin'), 'not a qemu migration stream\n'.repeat(100));
    const c2 = await home.banger(['vm', 'create', '--name', 'w2', '--image', 'bbw'], 600_000);
    assert.equal(c2.code, 0, c2.stderr);
    const w2 = await show('w2');
    assert.match(w2.warm_start ?? '', /^cold: restore from template \w+ failed/, JSON.stringify(w2));
    const hi2 = await home.banger(['vm', 'ssh', 'w2', '--', 'sh', '-c', 'echo cold']);
    assert.equal(hi2.stdout, 'cold\n', hi2.stderr);

    const del = await home.banger(['vm', 'delete', 'w1', 'w2', 'w3']);
    assert.equal(del.code, 0, del.stderr);
    const idel = await home.banger(['image', 'delete', 'bbw']);
    assert.equal(idel.code, 0, idel.stderr);
    assert.deepEqual(readdirSync(templatesDir()), [], 'deleting the image removed its templates');
    assert.deepEqual(home.qemuPids(), [], 'no qemu left');
  },
);

const configFile = (): string => join(home.root, 'config', 'banger', 'config.toml');
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test(
  'warm start in the background: the first cold run of the default spec makes its template without `image warm` (daemon stop mid-build leaves no qemu); image warm then exits 0 at once; the next VM restores',
  { skip, timeout: 20 * 60_000 },
  async (t) => {
    await home.banger(['image', 'delete', 'bbb']);
    await pushImage((reg as LocalRegistry).port, 'test/busybox', 'v1', [
      { tar: await busyboxTar(), compression: 'gzip' },
    ]);
    const pull = await home.banger([
      'image',
      'pull',
      `127.0.0.1:${(reg as LocalRegistry).port}/test/busybox:v1`,
      '--name',
      'bbb',
    ]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal((await home.banger(['daemon', 'stop'])).code, 0);
    writeFileSync(configFile(), 'default_image_name = "bbb"\nwarm_start_background = true\n');
    const t0 = Date.now();
    try {
      const templates = async (): Promise<{ key: string; serving: boolean }[]> => {
        const r = await home.banger(['image', 'show', 'bbb', '--json']);
        assert.equal(r.code, 0, r.stderr);
        return (JSON.parse(r.stdout) as { templates: { key: string; serving: boolean }[] }).templates;
      };

      // A cold run starts a build; the daemon stopped during it kills the build's qemu and leaves nothing.
      let logAt = home.daemonLog().length;
      const run1 = await home.banger(['vm', 'run', '--rm', '--', 'sh', '-c', 'true'], 600_000);
      assert.equal(run1.code, 0, run1.stderr);
      assert.match(home.daemonLog().slice(logAt), /making a template in the background/);
      await waitFor('the background build to boot its guest', () => home.qemuPids().length === 1, 120_000);
      const pid = home.daemonPid();
      assert.equal((await home.banger(['daemon', 'stop'])).code, 0);
      await waitFor('the daemon to exit', () => !alive(pid), 60_000);
      assert.match(home.daemonLog().slice(logAt), /stopping the template build in flight/);
      assert.deepEqual(home.qemuPids(), [], "daemon stop killed the build's qemu");
      assert.deepEqual(readdirSync(join(home.stateDir, 'vms')), [], 'no half-made build is left');
      assert.deepEqual(existsSync(templatesDir()) ? readdirSync(templatesDir()) : [], [], 'no half template');

      // The next cold run (a new daemon) makes the template in the background.
      logAt = home.daemonLog().length;
      const t1 = Date.now();
      const run2 = await home.banger(['vm', 'run', '--rm', '--', 'sh', '-c', 'true'], 600_000);
      assert.equal(run2.code, 0, run2.stderr);
      t.diagnostic(`cold vm run --rm -- sh -c true: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      const deadline = Date.now() + 300_000;
      let made: { key: string; serving: boolean }[] = [];
      while (Date.now() < deadline && !(made = await templates()).some((x) => x.serving))
        await new Promise((r) => setTimeout(r, 1000));
      assert.equal(made.filter((x) => x.serving).length, 1, `a template appeared\n${home.daemonLog().slice(logAt)}`);
      t.diagnostic(`template serving, from the start of the cold run: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      assert.match(home.daemonLog().slice(logAt), /background template ready/);
      await waitFor('the throwaway boot to end', () => home.qemuPids().length === 0, 30_000);

      const t2 = Date.now();
      const warm = await home.banger(['image', 'warm', 'bbb', '--json'], 60_000);
      assert.equal(warm.code, 0, warm.stderr);
      assert.equal((JSON.parse(warm.stdout) as { built: boolean }).built, false, 'image warm finds it current');
      t.diagnostic(`image warm then: ${((Date.now() - t2) / 1000).toFixed(1)} s`);

      const c = await home.banger(['vm', 'create', '--name', 'bg1'], 600_000);
      assert.equal(c.code, 0, c.stderr);
      assert.match((await show('bg1')).warm_start ?? '', /^restored from template /);
      assert.equal((await home.banger(['vm', 'delete', 'bg1'])).code, 0);
      assert.equal((await home.banger(['image', 'delete', 'bbb'])).code, 0);
      assert.deepEqual(home.qemuPids(), [], 'no qemu left');
    } finally {
      await home.banger(['daemon', 'stop']);
      writeFileSync(configFile(), TEST_CONFIG);
      t.diagnostic(`this test: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  },
);

/** Runs `banger args` under a daemon that pauses at `point` (BANGER_TEST_PAUSE), kills it with SIGKILL there. */
async function killDaemonAt(point: string, args: string[]): Promise<void> {
  assert.equal((await home.banger(['daemon', 'stop'])).code, 0);
  const logBefore = home.daemonLog().length;
  const cli = home.banger(args, 10 * 60_000, { BANGER_TEST_PAUSE: point });
  await waitFor(
    `test pause: ${point}`,
    () => home.daemonLog().slice(logBefore).includes(`test pause: ${point}`),
    300_000,
  );
  assert.equal(home.qemuPids().length, 1, `a qemu runs at ${point}`);
  process.kill(home.daemonPid(), 'SIGKILL');
  assert.notEqual((await cli).code, 0, 'the interrupted command fails');
}

test(
  'warm start: kill -9 of the daemon while a template is made and while a VM is restored converges (no half template, no orphan qemu; the next warm and create work)',
  { skip, timeout: 20 * 60_000 },
  async () => {
    await home.banger(['image', 'delete', 'bbk']);
    const pull = await home.banger([
      'image',
      'pull',
      `127.0.0.1:${(reg as LocalRegistry).port}/test/busybox:v1`,
      '--name',
      'bbk',
    ]);
    assert.equal(pull.code, 0, pull.stderr);

    // During the template build: its guest is up, the save has not begun.
    await killDaemonAt('template-save', ['image', 'warm', 'bbk']);
    const list = await home.banger(['vm', 'list']); // starts the daemon: its startup converges
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(home.qemuPids(), [], "the build's qemu was killed");
    assert.deepEqual(readdirSync(join(home.stateDir, 'vms')), [], 'the half-made build is gone');
    assert.deepEqual(existsSync(templatesDir()) ? readdirSync(templatesDir()) : [], [], 'no half template');
    const warm = await home.banger(['image', 'warm', 'bbk'], 600_000);
    assert.equal(warm.code, 0, warm.stderr);

    // During a restore: the guest runs from the template, its identity is not applied yet.
    await killDaemonAt('after-restore', ['vm', 'create', '--name', 'k1', '--image', 'bbk']);
    const names = await home.banger(['vm', 'list', '--json']);
    assert.equal(names.code, 0, names.stderr);
    assert.deepEqual(JSON.parse(names.stdout), [], 'the unfinished create is rolled back');
    assert.deepEqual(home.qemuPids(), [], 'no orphan qemu');
    assert.deepEqual(readdirSync(join(home.stateDir, 'vms')), [], 'no VM dir is left');
    const c = await home.banger(['vm', 'create', '--name', 'k1', '--image', 'bbk'], 600_000);
    assert.equal(c.code, 0, c.stderr);
    assert.match((await show('k1')).warm_start ?? '', /^restored from template /);
    const hi = await home.banger(['vm', 'ssh', 'k1', '--', 'sh', '-c', 'echo ok']);
    assert.equal(hi.stdout, 'ok\n', hi.stderr);
    assert.equal((await home.banger(['vm', 'delete', 'k1'])).code, 0);
    assert.equal((await home.banger(['image', 'delete', 'bbk'])).code, 0);
    assert.deepEqual(home.qemuPids(), [], 'no qemu left');
  },
);

test(
  'warm start, Debian with systemd and sshd: two VMs restored from one template differ in hostname, host key, /dev/urandom output and machine-id; with the reseed switched off their first random bytes are the same',
  {
    skip,
    timeout: 20 * 60_000,
  },
  async () => {
    await home.banger(['image', 'delete', 'debw']);
    const tar = readFileSync(
      debianBaseTar(['systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'openssh-server', 'iproute2', 'sudo']),
    );
    await pushImage((reg as LocalRegistry).port, 'test/debw', 'v1', [{ tar, compression: 'gzip' }]);
    const pull = await home.banger([
      'image',
      'pull',
      `127.0.0.1:${(reg as LocalRegistry).port}/test/debw:v1`,
      '--name',
      'debw',
    ]);
    assert.equal(pull.code, 0, pull.stderr);
    const warm = await home.banger(['image', 'warm', 'debw'], 600_000);
    assert.equal(warm.code, 0, warm.stderr);
    const facts: string[] = [];
    for (const name of ['id1', 'id2']) {
      const c = await home.banger(['vm', 'create', '--name', name, '--image', 'debw'], 600_000);
      assert.equal(c.code, 0, c.stderr);
      assert.match((await show(name)).warm_start ?? '', /^restored from template /);
      const r = await home.banger([
        'vm',
        'ssh',
        name,
        '--',
        'sh',
        '-c',
        'hostname; cat /etc/ssh/ssh_host_ed25519_key.pub; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"; echo; cat /etc/machine-id',
      ]);
      assert.equal(r.code, 0, r.stderr);
      facts.push(r.stdout);
    }
    const [a, b] = facts.map((f) => f.trim().split('\n'));
    assert.equal(a?.length, 4, facts[0]);
    assert.deepEqual([a?.[0], b?.[0]], ['id1', 'id2'], 'each has its own hostname');
    for (const [i, what] of [
      [1, 'host key'],
      [2, '/dev/urandom output'],
      [3, 'machine-id'],
    ] as const)
      assert.notEqual(a?.[i], b?.[i], `${what} differs`);
    const del = await home.banger(['vm', 'delete', 'id1', 'id2']);
    assert.equal(del.code, 0, del.stderr);

    // The converse, with the test-only switches: the agent writes the first random bytes after its
    // entropy and reseed step. Without the reseed two restores hold the template's CRNG state and
    // write the same bytes; with it they differ.
    const samples = async (extra: string, names: string[]): Promise<string[]> => {
      await home.banger(['daemon', 'stop']);
      writeFileSync(configFile(), `${TEST_CONFIG}${extra}`);
      const out: string[] = [];
      for (const name of names) {
        const c = await home.banger(['vm', 'create', '--name', name, '--image', 'debw'], 600_000);
        assert.equal(c.code, 0, c.stderr);
        assert.match((await show(name)).warm_start ?? '', /^restored from template /);
        const r = await home.banger(['vm', 'ssh', name, '--', 'cat', '/run/banger-rng-sample']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^[0-9a-f]{64}$/);
        out.push(r.stdout);
      }
      assert.equal((await home.banger(['vm', 'delete', ...names])).code, 0);
      return out;
    };
    try {
      const off = await samples('test_skip_reseed = true\ntest_rng_sample = true\n', ['off1', 'off2']);
      assert.equal(off[0], off[1], 'without the reseed, two restores draw the same random bytes');
      const on = await samples('test_rng_sample = true\n', ['on1', 'on2']);
      assert.notEqual(on[0], on[1], 'with the reseed they differ');
      assert.notEqual(on[0], off[0]);
    } finally {
      await home.banger(['daemon', 'stop']);
      writeFileSync(configFile(), TEST_CONFIG);
    }
    await home.banger(['image', 'delete', 'debw']);
  },
);
