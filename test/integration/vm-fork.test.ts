/**
 * Integration (network: user mode with restrict=on, loopback only): vm fork, vm snapshot
 * create|list|rm and vm run --from-snapshot on real VMs under qemu, through the real CLI and
 * daemon in an isolated banger home (the default Debian image, built on first use: sshd and
 * ssh-keyscan need it). One parent VM serves every test; the tests run in order.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sh, TestHome, type CliResult } from '../helpers/home.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  missingTools([...DEFAULT_VM_TOOLS, 'ssh-keyscan']),
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod',
);

let home: TestHome;
const started = Date.now();

before(() => {
  home = new TestHome('banger-it-fork-');
});

after(async () => {
  await home.cleanup();
  console.log(`vm-fork.test wall time: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

/** A host port for the parent to publish (loopback; unlikely to be taken). */
const PUBLISHED = 20000 + (process.pid % 20000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function ok(args: string[]): Promise<string> {
  const r = await home.banger(args);
  assert.equal(r.code, 0, `banger ${args.join(' ')}: ${r.stderr}\ndaemon log tail:\n${home.daemonLog().slice(-3000)}`);
  return r.stdout;
}

const inVm = async (name: string, script: string): Promise<string> =>
  (await ok(['vm', 'ssh', name, '--', 'sh', '-c', script])).trim();

async function show(
  name: string,
): Promise<{ state: string; ssh: string | null; image: string; published?: unknown[] }> {
  return JSON.parse(await ok(['vm', 'show', name, '--json'])) as {
    state: string;
    ssh: string | null;
    image: string;
    published?: unknown[];
  };
}

/** The ed25519 host key sshd presents on the VM's forwarded port, as `TYPE BASE64`. */
async function keyscan(name: string): Promise<string> {
  const ssh = (await show(name)).ssh;
  assert.ok(ssh, `${name} has an ssh address`);
  const [host, port] = ssh.split(':');
  // -T bounds the wait.
  const r = sh(['ssh-keyscan', '-T', '10', '-t', 'ed25519', '-p', String(port), String(host)]);
  const line = r.stdout.split('\n').find((l) => l.includes('ssh-ed25519'));
  assert.ok(line, `ssh-keyscan of ${ssh} found an ed25519 key: ${r.stderr}`);
  return line.split(' ').slice(1, 3).join(' ');
}

async function counter(name: string): Promise<number> {
  return Number(await inVm(name, 'cat /root/counter'));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !cond()) await sleep(100);
  assert.ok(cond(), `timed out waiting for ${what}\ndaemon log tail:\n${home.daemonLog().slice(-3000)}`);
}

/** Starts `banger args` under a daemon that pauses at `point`, waits for the pause, kills the daemon with SIGKILL. */
async function killDaemonAt(point: string, args: string[]): Promise<CliResult> {
  assert.equal((await home.banger(['daemon', 'stop'])).code, 0);
  const logBefore = home.daemonLog().length;
  const cli = home.banger(args, 10 * 60_000, { BANGER_TEST_PAUSE: point });
  await waitFor(
    `test pause: ${point}`,
    () => home.daemonLog().slice(logBefore).includes(`test pause: ${point}`),
    180_000,
  );
  process.kill(home.daemonPid(), 'SIGKILL');
  return cli;
}

const snapshotDirs = (): string[] => {
  const dir = join(home.stateDir, 'snapshots');
  return existsSync(dir) ? readdirSync(dir) : [];
};
const layerFiles = (): string[] => {
  const dir = join(home.stateDir, 'layers');
  return existsSync(dir) ? readdirSync(dir) : [];
};

test(
  'vm fork: the parent’s running processes and files go on in the fork, which has its own hostname, host key and machine-id and no published ports',
  { skip },
  async () => {
    // The first VM of a fresh home also pulls the kernel and builds the image.
    await ok(['vm', 'run', '-d', '--name', 'par', '-p', `127.0.0.1:${PUBLISHED}:8080`]);
    await inVm(
      'par',
      'nohup sleep 1000 >/dev/null 2>&1 & echo $! > /root/sleep.pid; ' +
        "nohup sh -c 'i=0; while [ $i -lt 900 ]; do i=$((i+1)); echo $i > /root/counter; sleep 1; done' >/dev/null 2>&1 & " +
        'echo before > /root/before-fork',
    );
    await sleep(2000);
    assert.ok((await show('par')).published?.length, 'the parent publishes a port');
    const parentKey = await keyscan('par');

    await ok(['vm', 'fork', 'par', 'kid']);
    assert.equal((await show('kid')).state, 'running');
    assert.equal((await show('par')).state, 'running', 'the parent runs on after the fork');

    // The parent's processes run in the fork: the same sleep (by its pid) and the counter moving on.
    assert.equal(await inVm('kid', 'tr "\\0" " " </proc/$(cat /root/sleep.pid)/cmdline'), 'sleep 1000');
    const a = await counter('kid');
    await sleep(2500);
    assert.ok((await counter('kid')) > a, 'the counter loop runs on in the fork');
    assert.equal(await inVm('kid', 'cat /root/before-fork'), 'before');

    // Diverged from here: a file written in the fork is not in the parent.
    await inVm('kid', 'echo mine > /root/fork-only && sync');
    assert.equal(await inVm('par', 'test -e /root/fork-only && echo present || echo absent'), 'absent');
    assert.ok((await counter('par')) > 0, 'the parent counter runs too');

    // Its own identity.
    assert.equal(await inVm('kid', 'hostname'), 'kid');
    assert.equal(await inVm('par', 'hostname'), 'par');
    assert.notEqual(await inVm('kid', 'cat /etc/machine-id'), await inVm('par', 'cat /etc/machine-id'));
    const kidFile = await inVm('kid', 'cut -d" " -f1,2 /etc/ssh/ssh_host_ed25519_key.pub');
    const parFile = await inVm('par', 'cut -d" " -f1,2 /etc/ssh/ssh_host_ed25519_key.pub');
    assert.notEqual(kidFile, parFile, 'the fork made its own host key');
    const kidKey = await keyscan('kid');
    assert.equal(kidKey, kidFile, "the fork's sshd presents its new key (reloaded)");
    assert.equal(await keyscan('par'), parentKey, "the parent's key is unchanged");
    assert.notEqual(kidKey, parentKey);
    assert.equal((await show('kid')).published?.length ?? 0, 0, 'a fork inherits no published ports');
    assert.deepEqual(snapshotDirs(), [], "the fork's internal snapshot is gone once it runs");
  },
);

test(
  'vm snapshot create|list, run --from-snapshot; a spec mismatch and image delete are refused naming why',
  { skip },
  async () => {
    await ok(['vm', 'snapshot', 'create', 'par', 'snap1']);
    const list = JSON.parse(await ok(['vm', 'snapshot', 'list', '--json'])) as { name: string; vm: string }[];
    assert.deepEqual(
      list.map((s) => [s.name, s.vm]),
      [['snap1', 'par']],
    );
    assert.equal((await show('par')).state, 'running');
    assert.ok((await counter('par')) > 0);

    const image = (await show('par')).image;
    const del = await home.banger(['image', 'delete', image]);
    assert.notEqual(del.code, 0);
    assert.match(del.stderr, /snapshot snap1/);

    const bad = await home.banger(['vm', 'create', '--from-snapshot', 'snap1', '--vcpu', '3', '--name', 'nope']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /cannot be restored here: vcpu 3 was asked for/);
    assert.match(
      (await home.banger(['vm', 'run', '-d', '--from-snapshot', 'missing'])).stderr,
      /no snapshot named "missing"/,
    );

    await ok(['vm', 'run', '-d', '--from-snapshot', 'snap1', '--name', 'kid2']);
    assert.equal(await inVm('kid2', 'hostname'), 'kid2');
    assert.equal(await inVm('kid2', 'kill -0 $(cat /root/sleep.pid) && echo alive'), 'alive');
    await ok(['vm', 'delete', 'kid2']);
  },
);

test('kill -9 of the daemon mid-snapshot: the parent runs again and no half snapshot stays', { skip }, async () => {
  const before = snapshotDirs();
  const r = await killDaemonAt('snapshot-saved', ['vm', 'snapshot', 'create', 'par', 'half']);
  assert.notEqual(r.code, 0, 'the interrupted command fails');
  // The next command starts a daemon, whose startup resumes the parent and drops the half snapshot.
  const names = (JSON.parse(await ok(['vm', 'snapshot', 'list', '--json'])) as { name: string }[]).map((s) => s.name);
  assert.deepEqual(names, ['snap1']);
  assert.deepEqual(snapshotDirs(), before);
  assert.equal((await show('par')).state, 'running');
  const a = await counter('par');
  await sleep(2500);
  assert.ok((await counter('par')) > a, 'the parent runs again');
});

test('deleting the parent leaves the fork working; the shared layers go with their last user', { skip }, async () => {
  const layers = layerFiles().length;
  assert.ok(layers >= 2, `the fork's and snap1's layers exist (${layerFiles().join(', ')})`);
  await ok(['vm', 'delete', 'par']);
  assert.equal(layerFiles().length, layers, 'no layer went with the parent');
  const a = await counter('kid');
  await sleep(2500);
  assert.ok((await counter('kid')) > a);
  assert.equal(await inVm('kid', 'cat /root/fork-only'), 'mine');
  await ok(['vm', 'snapshot', 'rm', 'snap1']);
  assert.equal(layerFiles().length, layers - 1, "snap1's layer went with it");
  await ok(['vm', 'delete', 'kid']);
  assert.deepEqual(layerFiles(), [], 'no layer is left once nothing stands on any');
});
