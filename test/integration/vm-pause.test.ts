/**
 * Integration (network: user mode with restrict=on, loopback only): vm pause /
 * vm resume on one real VM under qemu, through the real CLI and daemon in an
 * isolated banger home (the default image, built on first use).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TestHome } from '../helpers/home.js';
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function ok(args: string[]): Promise<string> {
  const r = await home.banger(args);
  assert.equal(r.code, 0, `banger ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function stats(name: string): Promise<{ state: string; pid: number | null; cpu_seconds: number | null }> {
  const [s] = JSON.parse(await ok(['vm', 'stats', name, '--json'])) as {
    state: string;
    pid: number | null;
    cpu_seconds: number | null;
  }[];
  assert.ok(s);
  return s;
}

/** CPU seconds the VMM used over `ms`. */
async function cpuOver(name: string, ms: number): Promise<number> {
  const a = (await stats(name)).cpu_seconds;
  await sleep(ms);
  const b = (await stats(name)).cpu_seconds;
  assert.ok(a !== null && b !== null, 'cpu_seconds is reported');
  return b - a;
}

async function state(name: string): Promise<string | undefined> {
  const all = JSON.parse(await ok(['vm', 'list', '--json'])) as { name: string; state: string }[];
  return all.find((v) => v.name === name)?.state;
}

async function counter(name: string): Promise<number> {
  return Number((await ok(['vm', 'ssh', name, '--', 'cat', '/tmp/c'])).trim());
}

test(
  'pause stops the guest (no CPU, ssh/exec refused naming vm resume), resume moves on with the clock set; a restarted daemon keeps it paused; stop of a paused VM',
  { skip },
  async () => {
    const name = 'pz';
    await ok(['vm', 'run', '-d', '--name', name]);
    // A counter every second and a busy loop (both bounded), so a running guest visibly uses CPU.
    await ok([
      'vm',
      'ssh',
      name,
      '--',
      'sh',
      '-c',
      "nohup sh -c 'i=0; while [ $i -lt 900 ]; do i=$((i+1)); echo $i > /tmp/c; sleep 1; done' >/dev/null 2>&1 & " +
        "nohup timeout 120 sh -c 'while :; do :; done' >/dev/null 2>&1 &",
    ]);
    await sleep(1500);
    const running = await cpuOver(name, 3000);

    await ok(['vm', 'pause', name]);
    assert.equal(await state(name), 'paused');
    const paused = await cpuOver(name, 3000);
    assert.ok(
      paused < Math.max(0.1, running / 10),
      `a paused VM used ${paused} CPU seconds in 3 s (running: ${running})`,
    );
    assert.ok(running > 0.5, `the busy guest used ${running} CPU seconds in 3 s`);
    for (const args of [
      ['vm', 'ssh', name, '--', 'true'],
      ['vm', 'exec', name, '--', 'true'],
    ]) {
      const r = await home.banger(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, /paused/, args.join(' '));
      assert.match(r.stderr, /banger vm resume pz/, args.join(' '));
    }
    assert.equal((await stats(name)).state, 'paused');

    await ok(['vm', 'resume', name]);
    assert.equal(await state(name), 'running');
    const n1 = await counter(name);
    await sleep(2500);
    const n2 = await counter(name);
    assert.ok(n2 > n1, `the counter moves on after resume (${n1} → ${n2})`);
    // The guest clock stood still for the > 3 s the VM was paused; resume set it.
    // Bounded by the host clock read before and after the ssh round trip (whole seconds, and the set rounds
    // to a second): without the resync it lags by the whole pause (> 3 s; 10 s in a run without it).
    const t0 = Date.now() / 1000;
    const guestNow = Number((await ok(['vm', 'ssh', name, '--', 'date', '+%s'])).trim());
    const t1 = Date.now() / 1000;
    const clockLog = home
      .daemonLog()
      .split('\n')
      .filter((l) => /clock|resumed/.test(l))
      .join('\n');
    assert.ok(
      guestNow >= Math.floor(t0) - 1 && guestNow <= Math.ceil(t1) + 1,
      `guest clock ${guestNow} is outside the host's [${t0}, ${t1}] after resume; daemon log:\n${clockLog}`,
    );

    // A restarted daemon finds the VMM paused (query-status) and keeps it so.
    await ok(['vm', 'pause', name]);
    await ok(['daemon', 'stop']);
    assert.equal(await state(name), 'paused');
    assert.match(home.daemonLog(), /adopted paused VM/);
    assert.equal(home.qemuPids().length, 1);

    // Stop of a paused VM: resumed, then the guest powers off through its agent (no kill after the grace).
    const before = home.daemonLog().length;
    await ok(['vm', 'stop', name]);
    assert.equal(await state(name), 'stopped');
    const log = home.daemonLog().slice(before);
    assert.match(log, /the guest agent is powering the VM off/, log);
    assert.deepEqual(home.qemuPids(), []);
    await ok(['vm', 'delete', name]);
  },
);
