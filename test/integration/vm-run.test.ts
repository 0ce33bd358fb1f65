/**
 * Integration (network: user mode with restrict=on, loopback only): boots real
 * VMs under qemu through the real CLI and daemon in an isolated banger home.
 * The first run pulls the Debian cloud kernel through apt and builds the
 * default image with mmdebstrap.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sh, TestHome } from '../helpers/home.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  missingTools(DEFAULT_VM_TOOLS),
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod',
);

let home: TestHome;

before(() => {
  home = new TestHome();
});

after(async () => {
  await home.cleanup();
});

function assertNothingLeft(): void {
  assert.deepEqual(home.qemuPids(), [], 'no qemu process is left');
  const vmsDir = join(home.stateDir, 'vms');
  assert.deepEqual(readdirSync(vmsDir), [], 'no VM directory is left');
  const sockets = readdirSync(home.runtimeDir).filter((f) => f.endsWith('.qmp'));
  assert.deepEqual(sockets, [], 'no QMP socket is left');
}

test('a fresh home lists no VMs and the socket is 0600', { skip }, async () => {
  const r = await home.banger(['vm', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), []);
  const mode = statSync(join(home.runtimeDir, 'bangerd.sock')).mode & 0o777;
  assert.equal(mode, 0o600);
  assert.equal(statSync(home.runtimeDir).mode & 0o777, 0o700);
});

test('in a fresh home the distribution kernel is listed as available', { skip }, async () => {
  const r = await home.banger(['kernel', 'list', '--available', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const e = (JSON.parse(r.stdout) as { name: string; state: string }[]).find((k) => k.name === 'debian-bookworm-cloud');
  assert.equal(e?.state, 'available');
});

test('doctor --json is valid JSON and warns about software emulation without KVM', { skip }, async () => {
  const r = await home.banger(['doctor', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; status: string; detail: string }[] };
  assert.equal(report.ok, true);
  const hv = report.checks.find((c) => c.name === 'hardware virtualization');
  assert.ok(hv);
  const kvmUsable =
    /\b(vmx|svm)\b/.test(sh(['cat', '/proc/cpuinfo']).stdout) && sh(['test', '-w', '/dev/kvm']).code === 0;
  if (!kvmUsable) {
    assert.equal(hv.status, 'WARN');
    assert.match(hv.detail, /TCG|software emulation/);
  }
});

for (const [args, pattern] of [
  [['--vcpu', '0'], /invalid vcpu 0/],
  [['--name', 'Bad_Name'], /character "B" at position 1/],
  [['--memory', '-1'], /invalid memory "-1": not a size/],
  [['--disk-size', '1Q'], /invalid disk_size "1Q": not a size/],
] as const) {
  test(`vm run ${args.join(' ')} fails clearly with 125 and leaves nothing`, { skip }, async () => {
    const r = await home.banger(['vm', 'run', ...args, '--rm', '--', 'true']);
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, pattern);
    assert.match(r.stderr, /hint:/);
    const list = await home.banger(['vm', 'list', '--json']);
    assert.deepEqual(JSON.parse(list.stdout), []);
  });
}

test('vm run --rm passes output and exit status through and leaves nothing behind', { skip }, async () => {
  const r = await home.banger(['vm', 'run', '--rm', '--', 'sh', '-c', 'echo hi; exit 42']);
  assert.equal(r.code, 42, `stderr: ${r.stderr}\ndaemon log tail: ${home.daemonLog().slice(-3000)}`);
  assert.equal(r.stdout, 'hi\n');
  assert.match(r.stderr, /spec: \d+ vcpu \| \d+ MiB \| \S+ disk/);
  assert.match(r.stderr, /ready in/);
  const list = await home.banger(['vm', 'list', '--json']);
  assert.deepEqual(JSON.parse(list.stdout), []);
  assertNothingLeft();
});

/** Polls until `cond()` holds, at most `ms`; false when it never did. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return cond();
}

test(
  'vm run --rm cleanup: Ctrl-C while the guest command runs deletes the VM, says interrupted and exits 130',
  { skip },
  async () => {
    // The first VM test of a fresh home also pulls the kernel and builds the image: hence the long wait.
    const run = home.bangerBackground([
      'vm',
      'run',
      '--rm',
      '--name',
      'rm-ctrlc',
      '--',
      'sh',
      '-c',
      'echo started; sleep 600',
    ]);
    try {
      const started = await until(() => run.stdout().toString().includes('started'), 14 * 60_000);
      assert.ok(started, `the guest command did not start; daemon log tail: ${home.daemonLog().slice(-2000)}`);
      assert.ok(home.qemuPids().length > 0, 'the VM runs while its command does');
      run.ctrlC();
      const r = await run.wait();
      assert.equal(r.code, 130, r.stderr);
      assert.match(r.stderr, /interrupted/);
      assert.doesNotMatch(r.stderr, /ssh connection .* failed/, 'a Ctrl-C is not reported as an ssh failure');
    } finally {
      await run.stop();
    }
    const list = await home.banger(['vm', 'list', '--json']);
    assert.deepEqual(JSON.parse(list.stdout), [], 'no row is left');
    assertNothingLeft();
  },
);

/** A guest command that kill -9s every process whose name starts with `name`, then waits. */
const killAll = (name: string): string =>
  `for p in /proc/[0-9]*; do case "$(cat $p/comm 2>/dev/null)" in ${name}*) kill -9 "\${p#/proc/}";; esac; done; sleep 60`;

test(
  'vm run --rm cleanup: a guest agent that dies under the command (the guest kills it) exits 125, names the failure and deletes the VM',
  { skip },
  async () => {
    // A command without a terminal runs through the agent. Killed, systemd respawns it; the
    // virtio-serial stream never closes, so only the liveness check can notice (within ~45 s).
    const r = await home.banger([
      'vm',
      'run',
      '--rm',
      '--name',
      'rm-agentfail',
      '--',
      'sh',
      '-c',
      killAll('banger-agent'),
    ]);
    assert.equal(r.code, 125, `stderr: ${r.stderr}\ndaemon log tail: ${home.daemonLog().slice(-2000)}`);
    assert.match(r.stderr, /the guest agent of VM "rm-agentfail" stopped answering: no reply to a liveness check/);
    assert.match(r.stderr, /hint: .*the next command reconnects/);
    const list = await home.banger(['vm', 'list', '--json']);
    assert.deepEqual(JSON.parse(list.stdout), [], 'no row is left');
    assertNothingLeft();
  },
);

test(
  'vm exec over ssh: a connection that dies (the guest kills its sshd) exits 125 and names the failure',
  { skip },
  async () => {
    const made = await home.banger(['vm', 'run', '-d', '--name', 'sshfail']);
    assert.equal(made.code, 0, made.stderr);
    try {
      // The client sees the connection drop (255) and the follow-up probe cannot connect.
      const r = await home.banger(['vm', 'exec', 'sshfail', '--guest-path', '/', '--', 'sh', '-c', killAll('sshd')]);
      assert.equal(r.code, 125, `stderr: ${r.stderr}\ndaemon log tail: ${home.daemonLog().slice(-2000)}`);
      assert.match(r.stderr, /ssh connection to VM "sshfail" failed/);
      assert.match(r.stderr, /hint:/);
    } finally {
      assert.equal((await home.banger(['vm', 'delete', 'sshfail'])).code, 0);
    }
    assertNothingLeft();
  },
);

test(
  'the guest is Debian 12 with the distribution dotfiles in /root; image and kernel are reused',
  { skip },
  async () => {
    const r = await home.banger(['vm', 'run', '--rm', '--', 'sh', '-c', 'cat /etc/os-release; ls -a /root']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /VERSION_ID="12"/);
    assert.match(r.stdout, /^\.bashrc$/m);
    assert.doesNotMatch(r.stderr, /\[image\]|\[kernel\]/, 'no rebuild on the second run');
    assertNothingLeft();
  },
);

test(
  'the pulled distribution kernel: listed as pulled, shown with initramfs, modules and sha256; no second pull without --force',
  { skip },
  async () => {
    const avail = await home.banger(['kernel', 'list', '--available', '--json']);
    const e = (JSON.parse(avail.stdout) as { name: string; state: string }[]).find(
      (k) => k.name === 'debian-bookworm-cloud',
    );
    assert.equal(e?.state, 'pulled');
    const show = await home.banger(['kernel', 'show', 'debian-bookworm-cloud', '--json']);
    assert.equal(show.code, 0, show.stderr);
    const k = JSON.parse(show.stdout) as {
      sha256: string;
      modules: number;
      initrd_kind: string;
      initramfs_modules: string[];
      format: string;
    };
    assert.match(k.sha256, /^[0-9a-f]{64}$/);
    assert.ok(k.modules > 500, `module count ${k.modules}`);
    assert.equal(k.initrd_kind, 'banger');
    assert.ok(k.initramfs_modules.some((m) => m.endsWith('virtio_blk.ko')));
    assert.equal(k.format, 'bzImage');
    const again = await home.banger(['kernel', 'pull', 'debian-bookworm-cloud']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already pulled[\s\S]*--force/);
  },
);

test('arguments reach the guest command unchanged', { skip }, async () => {
  const r = await home.banger(['vm', 'run', '--rm', '--', 'printf', '%s\\n', 'a b', '$HOME', "x'y", '']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "a b\n$HOME\nx'y\n\n");
});

test('two VMs from the same image present different sshd host keys', { skip }, async () => {
  const names = ['hk-one', 'hk-two'];
  try {
    for (const n of names) {
      const r = await home.banger(['vm', 'run', '-d', '--name', n]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), n);
    }
    const keys = names.map((n) => {
      const r = sh(['ssh-keygen', '-F', `${n}.vm`, '-f', join(home.stateDir, 'ssh', 'known_hosts')]);
      const line = r.stdout.split('\n').find((l) => l.startsWith(`${n}.vm `));
      assert.ok(line, `known_hosts has an entry keyed by ${n}.vm`);
      return line.split(' ').slice(1).join(' ');
    });
    assert.notEqual(keys[0], keys[1]);
    const ssh = await home.banger(['vm', 'ssh', 'hk-one', '--', 'hostname']);
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(ssh.stdout.trim(), 'hk-one');
  } finally {
    const del = await home.banger(['vm', 'delete', ...names]);
    assert.equal(del.code, 0, del.stderr);
  }
  const r = sh(['ssh-keygen', '-F', 'hk-one.vm', '-f', join(home.stateDir, 'ssh', 'known_hosts')]);
  assert.equal(r.stdout.trim(), '', 'known_hosts entry removed on delete');
  assertNothingLeft();
});

test('removing the kernel leaves the image bootable (the image keeps its own copy)', { skip }, async () => {
  const rm = await home.banger(['kernel', 'rm', 'debian-bookworm-cloud']);
  assert.equal(rm.code, 0, rm.stderr);
  const r = await home.banger(['vm', 'run', '--rm', '--', 'uname', '-r']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /cloud-amd64/);
  assert.doesNotMatch(r.stderr, /\[kernel\]/, 'the kernel was not pulled again');
  assertNothingLeft();
});

/** Whether pid is a running process (not gone, not a zombie). */
function processLives(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function bootId(name: string): Promise<string> {
  const r = await home.banger(['vm', 'ssh', name, '--', 'cat', '/proc/sys/kernel/random/boot_id']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function state(name: string): Promise<string | undefined> {
  const r = await home.banger(['vm', 'list', '--json']);
  return (JSON.parse(r.stdout) as { name: string; state: string }[]).find((v) => v.name === name)?.state;
}

test(
  'lifecycle: create, stop, start (data survives), restart (new boot), kill, start after kill, delete',
  { skip },
  async () => {
    const name = 'life';
    let r = await home.banger(['vm', 'run', '-d', '--name', name]);
    assert.equal(r.code, 0, r.stderr);
    // No sync: only a graceful stop (the guest syncs and powers off) keeps data still in the page cache.
    r = await home.banger(['vm', 'ssh', name, '--', 'sh', '-c', 'echo kept > /root/data']);
    assert.equal(r.code, 0, r.stderr);
    const boot1 = await bootId(name);

    r = await home.banger(['vm', 'stop', name]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await state(name), 'stopped');
    assert.deepEqual(home.qemuPids(), []);

    r = await home.banger(['vm', 'start', name]);
    assert.equal(r.code, 0, r.stderr);
    r = await home.banger(['vm', 'ssh', name, '--', 'cat', '/root/data']);
    assert.equal(r.stdout.trim(), 'kept', r.stderr);
    // A guest that powered off unmounted its filesystems: none needed a journal replay at this boot.
    r = await home.banger(['vm', 'ssh', name, '--', 'dmesg']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(
      r.stdout,
      /EXT4-fs \([^)]*\): recovery complete/,
      'the stop was not graceful: a filesystem needed journal recovery',
    );
    const boot2 = await bootId(name);
    assert.notEqual(boot2, boot1);

    r = await home.banger(['vm', 'restart', name]);
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(await bootId(name), boot2);

    r = await home.banger(['vm', 'ssh', name, '--', 'sh', '-c', 'echo after-kill > /root/data2 && sync']);
    assert.equal(r.code, 0, r.stderr);
    r = await home.banger(['vm', 'kill', name]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await state(name), 'stopped');
    r = await home.banger(['vm', 'start', name]);
    assert.equal(r.code, 0, `start after kill (dirty journals): ${r.stderr}`);
    r = await home.banger(['vm', 'ssh', name, '--', 'cat', '/root/data', '/root/data2']);
    assert.equal(r.stdout, 'kept\nafter-kill\n', r.stderr);
    // The check above can tell: after a kill the journals are replayed.
    r = await home.banger(['vm', 'ssh', name, '--', 'dmesg']);
    assert.match(r.stdout, /EXT4-fs \([^)]*\): recovery complete/, 'a killed guest leaves a journal to replay');

    // Trust on first use: a host key that is not the one recorded is refused with a clear error.
    const knownHosts = join(home.stateDir, 'ssh', 'known_hosts');
    const recorded = readFileSync(knownHosts, 'utf8');
    assert.equal(sh(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(home.root, 'other-key')]).code, 0);
    const otherKey = readFileSync(join(home.root, 'other-key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(
      knownHosts,
      recorded
        .split('\n')
        .map((l) => (l.startsWith(`${name}.vm `) ? `${name}.vm ${otherKey}` : l))
        .join('\n'),
    );
    r = await home.banger(['vm', 'ssh', name, '--', 'true']);
    assert.equal(r.code, 125, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`banger: the ssh host key of VM "${name}" \\(${name}\\.vm\\) is not the one banger recorded`),
    );
    assert.match(r.stderr, new RegExp(`hint: .*ssh-keygen -R ${name}\\.vm -f ${knownHosts}`));
    writeFileSync(knownHosts, recorded);
    rmSync(join(home.root, 'other-key'), { force: true });
    rmSync(join(home.root, 'other-key.pub'), { force: true });

    r = await home.banger(['vm', 'delete', name]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await state(name), undefined);
    assertNothingLeft();
  },
);

test('multi-target stop: a and b stopped, missing reported, exit 1; set and prune', { skip }, async () => {
  for (const n of ['multi-a', 'multi-b']) assert.equal((await home.banger(['vm', 'run', '-d', '--name', n])).code, 0);
  const r = await home.banger(['vm', 'stop', 'multi-a', 'multi-b', 'missing']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /stopped multi-a[\s\S]*stopped multi-b/);
  assert.match(r.stderr, /missing: no VM named "missing"/);
  assert.equal(await state('multi-a'), 'stopped');
  assert.equal(await state('multi-b'), 'stopped');

  const set = await home.banger(['vm', 'set', 'multi-a', '--vcpu', '2', '--memory', '1G']);
  assert.equal(set.code, 0, set.stderr);
  assert.equal((await home.banger(['vm', 'start', 'multi-a'])).code, 0);
  const nproc = await home.banger(['vm', 'ssh', 'multi-a', '--', 'nproc']);
  assert.equal(nproc.stdout.trim(), '2');
  const running = await home.banger(['vm', 'set', 'multi-a', '--vcpu', '1']);
  assert.equal(running.code, 1);
  assert.match(running.stderr, /needs it stopped/);

  const prune = await home.banger(['vm', 'prune', '-f']);
  assert.equal(prune.code, 0, prune.stderr);
  assert.match(prune.stdout, /deleted multi-b/);
  assert.equal(await state('multi-b'), undefined);
  assert.equal(await state('multi-a'), 'running');
});

/**
 * A running VM named `name`: the one an earlier test left running when there
 * is one (the usual case: no extra boot), else made here, so that one failed
 * test does not fail the tests after it for want of its VM.
 */
async function runningVm(name: string): Promise<void> {
  const st = await state(name);
  if (st === 'running') return;
  const r =
    st === undefined
      ? await home.banger(['vm', 'run', '-d', '--name', name])
      : await home.banger(['vm', 'start', name]);
  assert.equal(r.code, 0, `making VM ${name} for this test: ${r.stderr}`);
}

test(
  'cp in and out keeps contents and modes; stats, -e, logs; the root filesystem grew to the overlay size',
  { skip },
  async () => {
    await runningVm('multi-a');
    const src = join(home.root, 'cp-src');
    sh(['mkdir', '-p', join(src, 'sub')]);
    sh(['sh', '-c', `printf hello > ${join(src, 'sub', 'f')} && chmod 0750 ${join(src, 'sub', 'f')}`]);
    let r = await home.banger(['vm', 'cp', src, 'multi-a:/root/copied']);
    assert.equal(r.code, 0, r.stderr);
    r = await home.banger(['vm', 'ssh', 'multi-a', '--', 'stat', '-c', '%a %s', '/root/copied/sub/f']);
    assert.equal(r.stdout.trim(), '750 5');
    const back = join(home.root, 'cp-back');
    r = await home.banger(['vm', 'cp', 'multi-a:/etc/hostname', back]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sh(['cat', back]).stdout.trim(), 'multi-a');
    r = await home.banger(['vm', 'cp', src, back]);
    assert.equal(r.code, 1, 'host to host is refused');

    r = await home.banger(['vm', 'ssh', '-e', 'GREETING=a b $x', 'multi-a', '--', 'printenv', 'GREETING']);
    assert.equal(r.stdout, 'a b $x\n', r.stderr);

    r = await home.banger(['vm', 'stats', 'multi-a', '--json']);
    const [st] = JSON.parse(r.stdout) as { pid: number; rss_bytes: number; guest_uptime_s: number }[];
    assert.ok(st && st.pid > 0 && st.rss_bytes > 0 && st.guest_uptime_s > 0, r.stdout);

    r = await home.banger(['vm', 'logs', 'multi-a']);
    assert.match(r.stdout, /banger-bootstrap: ready/);

    r = await home.banger([
      'vm',
      'ssh',
      'multi-a',
      '--',
      'sh',
      '-c',
      'for i in $(seq 30); do s=$(df -B1 --output=size / | tail -1); [ "$s" -gt 4000000000 ] && break; sleep 1; done; echo $s',
    ]);
    assert.ok(Number(r.stdout.trim()) > 4e9, `root filesystem size ${r.stdout}`);
  },
);

test(
  'VMs outlive the daemon: kill -9 bangerd, the next call adopts the VM; a dead qemu is noticed',
  { skip },
  async () => {
    await runningVm('multi-a');
    const pid = Number(sh(['cat', join(home.runtimeDir, 'bangerd.pid')]).stdout.trim());
    assert.ok(pid > 0);
    process.kill(pid, 'SIGKILL');
    let r = await home.banger(['vm', 'ssh', 'multi-a', '--', 'true']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await state('multi-a'), 'running');

    // handles.json gone: the store copy is enough.
    const list = JSON.parse((await home.banger(['vm', 'list', '--json'])).stdout) as {
      id: string;
      name: string;
      pid: number;
    }[];
    const vm = list.find((v) => v.name === 'multi-a');
    assert.ok(vm);
    sh(['rm', '-f', join(home.stateDir, 'vms', vm.id, 'handles.json')]);
    process.kill(Number(sh(['cat', join(home.runtimeDir, 'bangerd.pid')]).stdout.trim()), 'SIGKILL');
    r = await home.banger(['vm', 'ssh', 'multi-a', '--', 'true']);
    assert.equal(r.code, 0, r.stderr);

    // The VMM dies while the daemon is down: reported stopped, resources gone.
    process.kill(Number(sh(['cat', join(home.runtimeDir, 'bangerd.pid')]).stdout.trim()), 'SIGKILL');
    process.kill(vm.pid, 'SIGKILL');
    // Wait (bounded) for the kill to land instead of sleeping a fixed time.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && processLives(vm.pid)) await new Promise((res) => setTimeout(res, 50));
    assert.equal(processLives(vm.pid), false, `qemu ${vm.pid} is gone`);
    assert.equal(await state('multi-a'), 'stopped');
    assert.equal(sh(['test', '-e', join(home.runtimeDir, `${vm.id.slice(0, 12)}.qmp`)]).code, 1, 'QMP socket removed');
    assert.equal((await home.banger(['vm', 'delete', 'multi-a'])).code, 0);
    assertNothingLeft();
  },
);

test('ssh-config --install twice then --uninstall restores the original file', { skip }, async () => {
  const sshDir = join(home.env.HOME as string, '.ssh');
  sh(['mkdir', '-p', sshDir]);
  const original = 'Host example\n  User me\n';
  sh(['sh', '-c', `printf '%s' '${original}' > ${join(sshDir, 'config')}`]);
  for (let i = 0; i < 2; i++) assert.equal((await home.banger(['ssh-config', '--install'])).code, 0);
  const installed = sh(['cat', join(sshDir, 'config')]).stdout;
  assert.equal(installed.split('\n').filter((l) => l.startsWith('Include ')).length, 1);
  assert.equal((await home.banger(['ssh-config', '--uninstall'])).code, 0);
  assert.equal(sh(['cat', join(sshDir, 'config')]).stdout, original);
});
