/**
 * Integration (network: user mode with restrict=on, loopback only; boots VMs: run under
 * `flock /work/vm.lock`): `vm run -- cmd` and `vm ssh` through the guest agent (vm.exec) for images
 * without sshd, pushed to a local registry:
 *   - a busybox-only image: exit status, output, argv passed exactly, -e, stdin piped, death by signal;
 *   - a Debian minbase tree (no systemd, no sshd): the same, and an interactive shell on a terminal
 *     driven through script(1): window size, Ctrl-C reaching the guest command, exit status.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BUSYBOX, busyboxTar, debianMinbaseTar } from '../helpers/guest-images.js';
import { TestHome } from '../helpers/home.js';
import { bangerInput, ptySession } from '../helpers/interactive.js';
import { LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [...missingTools([...DEFAULT_VM_TOOLS, 'docker-registry', 'script']), ...(existsSync(BUSYBOX) ? [] : [BUSYBOX])],
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod busybox-static docker-registry bsdutils',
);

let home: TestHome;
let reg: LocalRegistry | undefined;

before(async () => {
  if (skip) return;
  home = new TestHome('banger-it-agentexec-');
  reg = await LocalRegistry.start();
});

after(async () => {
  reg?.stop();
  if (!skip) await home.cleanup();
});

async function pull(repo: string, tar: Buffer, name: string): Promise<void> {
  await home.banger(['image', 'delete', name]); // a kept home (BANGER_TEST_HOME) may have it
  await pushImage((reg as LocalRegistry).port, repo, 'v1', [{ tar, compression: 'gzip' }]);
  const r = await home.banger(['image', 'pull', `127.0.0.1:${(reg as LocalRegistry).port}/${repo}:v1`, '--name', name]);
  assert.equal(r.code, 0, r.stderr);
}

async function vmNames(): Promise<string[]> {
  const r = await home.banger(['vm', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { name: string }[]).map((v) => v.name);
}

test(
  'busybox-only image: `vm run --rm --image bb -- sh -c "echo hi; exit 7"` prints hi and exits 7 through the agent, offline',
  { skip, timeout: 15 * 60_000 },
  async (t) => {
    await pull('test/busybox', await busyboxTar(), 'bb');
    const t0 = Date.now();
    const r = await home.banger(['vm', 'run', '--rm', '--image', 'bb', '--', 'sh', '-c', 'echo hi; exit 7'], 600_000);
    t.diagnostic(`busybox image: vm run --rm end to end ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(r.stdout, 'hi\n', r.stderr);
    assert.equal(r.code, 7, r.stderr);
    assert.deepEqual(await vmNames(), [], '--rm deleted the VM');
    assert.deepEqual(home.qemuPids(), [], 'no qemu left');
  },
);

test(
  'busybox-only image: vm ssh -- cmd passes argv exactly, -e env, piped stdin to its end, stderr apart, death by signal → 128+N, Ctrl-C → SIGINT in the guest and 130',
  { skip, timeout: 15 * 60_000 },
  async () => {
    await home.banger(['vm', 'delete', 'bbx']);
    const c = await home.banger(['vm', 'create', '--name', 'bbx', '--image', 'bb'], 600_000);
    assert.equal(c.code, 0, c.stderr);
    try {
      const args = ['a b', '$HOME', '"q"', "it's", '*', ''];
      const argv = await home.banger([
        'vm',
        'ssh',
        'bbx',
        '--',
        'sh',
        '-c',
        'for a; do printf "[%s]" "$a"; done',
        'x',
        ...args,
      ]);
      assert.equal(argv.code, 0, argv.stderr);
      assert.equal(argv.stdout, '[a b][$HOME]["q"][it\'s][*][]');
      const env = await home.banger([
        'vm',
        'ssh',
        'bbx',
        '-e',
        'FOO=x y',
        '-e',
        'BAR=',
        '--',
        'sh',
        '-c',
        'echo "$FOO|$BAR|$PATH|$HOME"',
      ]);
      assert.equal(env.code, 0, env.stderr);
      assert.equal(env.stdout, 'x y||/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root\n');
      const input = 'line one\nline two\n'.repeat(5000); // 95 kB: more than one frame and one credit window
      const cat = await bangerInput(
        home.env,
        ['vm', 'ssh', 'bbx', '--', 'sh', '-c', 'busybox wc -c; echo err >&2; exit 3'],
        input,
      );
      assert.equal(cat.code, 3, cat.stderr);
      assert.equal(cat.stdout.trim(), String(input.length));
      assert.match(cat.stderr, /^err$/m);
      const killed = await home.banger(['vm', 'ssh', 'bbx', '--', 'sh', '-c', 'kill -TERM $$']);
      assert.equal(killed.code, 128 + 15, killed.stderr);
      // Without a terminal, Ctrl-C (SIGINT to banger's process group) reaches the guest command as SIGINT; banger exits 130.
      const bg = home.bangerBackground([
        'vm',
        'ssh',
        'bbx',
        '--',
        'sh',
        '-c',
        'trap "echo INT; exit 5" INT; echo ready; while :; do busybox sleep 1; done',
      ]);
      for (let i = 0; i < 300 && !bg.stdout().toString().includes('ready'); i++) await sleep(100);
      assert.match(bg.stdout().toString(), /ready/);
      bg.ctrlC();
      const interrupted = await bg.wait();
      assert.equal(interrupted.code, 130, interrupted.stderr);
      assert.equal(interrupted.stdout, 'ready\nINT\n');
      assert.match(interrupted.stderr, /interrupted/);
      const info = await home.banger(['vm', 'ssh', 'bbx', '--', 'nope-not-a-program']);
      assert.notEqual(info.code, 0);
      assert.match(info.stderr, /nope-not-a-program/);
    } finally {
      const d = await home.banger(['vm', 'delete', 'bbx']);
      assert.equal(d.code, 0, d.stderr);
    }
  },
);

test(
  'Debian minbase (no systemd, no sshd): vm run -- cmd exits 7; vm ssh is an interactive shell on a terminal (window size, Ctrl-C, exit status)',
  { skip, timeout: 30 * 60_000 },
  async (t) => {
    await pull('test/minbase', readFileSync(debianMinbaseTar()), 'mb');
    const t0 = Date.now();
    const r = await home.banger(['vm', 'run', '--rm', '--image', 'mb', '--', 'sh', '-c', 'echo hi; exit 7'], 600_000);
    t.diagnostic(`minbase image: vm run --rm end to end ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(r.stdout, 'hi\n', r.stderr);
    assert.equal(r.code, 7, r.stderr);

    await home.banger(['vm', 'delete', 'mbx']);
    const c = await home.banger(['vm', 'create', '--name', 'mbx', '--image', 'mb'], 600_000);
    assert.equal(c.code, 0, c.stderr);
    try {
      const s = ptySession(home.env, 'mbx');
      // Markers are computed by the guest shell, so the terminal's echo of the typed line never matches them.
      s.send('echo READY$((40+2))\n');
      await s.waitFor(/READY42/, 60_000);
      s.send('stty size; tty; echo "$SHELL $HOME $(pwd)"\n');
      await s.waitFor(/33 101\r*\n\/dev\/pts\/\d+\r*\n\/bin\/bash \/root \/root/, 30_000);
      s.send('echo SLEEP$((1+1)); sleep 100; echo AFTER$((2+3))\n');
      await s.waitFor(/SLEEP2/, 30_000);
      await new Promise((res) => setTimeout(res, 1000));
      s.send('\x03');
      s.send('echo RC$((3+4))\n');
      // Within 30 s, far less than the 100 s sleep: ^C reached it, and the shell lives on.
      await s.waitFor(/RC7/, 30_000);
      assert.doesNotMatch(s.output(), /AFTER5/, 'the interrupted line did not go on');
      s.send('exit 3\n');
      assert.equal(await s.exited, 3, s.output());
    } finally {
      const d = await home.banger(['vm', 'delete', 'mbx']);
      assert.equal(d.code, 0, d.stderr);
    }
  },
);

test(
  'the default image (sshd and an agent): a non-interactive vm run --rm -- sh -c "echo hi; exit 7" goes through the agent too',
  { skip, timeout: 30 * 60_000 },
  async (t) => {
    // The first use builds the default image: not part of the time measured.
    await home.banger(['vm', 'delete', 'warm']);
    const warm = await home.banger(['vm', 'create', '--name', 'warm', '--no-start'], 1_500_000);
    assert.equal(warm.code, 0, warm.stderr);
    assert.equal((await home.banger(['vm', 'delete', 'warm'])).code, 0);
    const execs = (): number => home.daemonLog().split('"method":"vm.exec"').length;
    const before = execs();
    const t0 = Date.now();
    const r = await home.banger(['vm', 'run', '--rm', '--', 'sh', '-c', 'echo hi; exit 7'], 600_000);
    t.diagnostic(`default image: vm run --rm end to end ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(r.stdout, 'hi\n', r.stderr);
    assert.equal(r.code, 7, r.stderr);
    // No terminal: the command goes through the agent (one vm.exec), as for an image without sshd.
    assert.equal(execs(), before + 1, 'one vm.exec: the agent path');
  },
);
