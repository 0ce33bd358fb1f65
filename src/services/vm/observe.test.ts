import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmRow } from '../../store/vms.js';
import type { CommandRunner } from '../../system/runner.js';
import type { GuestTraits } from './boot.js';
import { vmStats, type UptimeAgents } from './observe.js';
import type { RuntimeFiles } from './runtime.js';

const VM = {
  id: '0123456789abcdef0123456789abcdef',
  name: 'dev',
  state: 'running',
  sshPort: 2222,
  handles: { pid: process.pid, startTime: 0, controlSocket: '/nonexistent', sshPort: 2222 },
} as unknown as VmRow;

const runtime = {
  sshInfo: () => ({
    name: 'dev',
    host: '127.0.0.1',
    port: 2222,
    user: 'root',
    key: '/k',
    known_hosts: '/kh',
    host_key_alias: 'dev.vm',
  }),
} as unknown as RuntimeFiles;

/** vmStats with an agent answering `agentUp` (ms; an Error: it fails) and ssh answering `sshUp` (`cat /proc/uptime`). */
async function stats(guest: Omit<GuestTraits, 'orderlyShutdown'>, agentUp: number | Error, sshUp: string | undefined) {
  const asked: string[] = [];
  const agents: UptimeAgents = {
    health: async () => {
      asked.push('agent');
      if (agentUp instanceof Error) throw agentUp;
      return { uptimeMs: agentUp };
    },
  };
  const runner = {
    run: async (argv: readonly string[]) => {
      asked.push(argv[0] as string);
      return sshUp === undefined
        ? { code: 255, stdout: '', stderr: 'Connection refused' }
        : { code: 0, stdout: sshUp, stderr: '' };
    },
  } as unknown as CommandRunner;
  const s = await vmStats(VM, runtime, runner, agents, async () => ({ ...guest, orderlyShutdown: true }));
  return { uptime: s.guest_uptime_s, asked, pid: s.pid };
}

test('vm stats: the guest uptime comes from the agent when the guest has one, without ssh', async () => {
  const r = await stats({ agent: true, sshd: true }, 12_345, '99.00 1.00\n');
  assert.deepEqual(r, { uptime: 12.345, asked: ['agent'], pid: process.pid });
  const noSshd = await stats({ agent: true, sshd: false }, 2_000, undefined);
  assert.deepEqual(noSshd, { uptime: 2, asked: ['agent'], pid: process.pid });
});

test('vm stats: an agent that does not answer falls back to ssh; a guest without either has no uptime', async () => {
  assert.deepEqual(await stats({ agent: true, sshd: true }, new Error('timeout'), '99.50 1.00\n'), {
    uptime: 99.5,
    asked: ['agent', 'ssh'],
    pid: process.pid,
  });
  assert.deepEqual(await stats({ agent: false, sshd: true }, 1, '7.25 1.00\n'), {
    uptime: 7.25,
    asked: ['ssh'],
    pid: process.pid,
  });
  assert.deepEqual(await stats({ agent: true, sshd: false }, new Error('timeout'), '1 1\n'), {
    uptime: null,
    asked: ['agent'],
    pid: process.pid,
  });
});

test('vm stats of a stopped VM: nulls, nothing asked', async () => {
  const asked: string[] = [];
  const s = await vmStats(
    { ...VM, state: 'stopped', handles: undefined } as unknown as VmRow,
    runtime,
    { run: async () => (asked.push('ssh'), { code: 0, stdout: '', stderr: '' }) } as unknown as CommandRunner,
    { health: async () => (asked.push('agent'), { uptimeMs: 1 }) },
    async () => ({ agent: true, sshd: true, orderlyShutdown: true }),
  );
  assert.deepEqual(s, {
    name: 'dev',
    state: 'stopped',
    pid: null,
    cpu_seconds: null,
    rss_bytes: null,
    guest_uptime_s: null,
  });
  assert.deepEqual(asked, []);
});
