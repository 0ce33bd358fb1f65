import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import type { VmSessionInfo } from '../../../api/methods.js';
import type { CommandRunner } from '../../../system/runner.js';
import { NodeRunner } from '../../../system/node-runner.js';
import { runVm } from './run.js';
import { fakeCli } from '../../../../test/fakes/cli.js';

/** A loopback port nothing listens on: ssh to it exits 255 at once (connection refused). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * `vm run --rm -- cmd` against a fake daemon whose ssh target refuses connections. The runner serves
 * the failure probe that follows ssh's 255; `onProbe` runs when the probe starts.
 */
async function runWithDeadSsh(
  onProbe: () => void,
): Promise<{ code: number | undefined; err: string; calls: string[] }> {
  const port = await closedPort();
  const info: VmSessionInfo = {
    name: 'rm-ctrlc',
    host: '127.0.0.1',
    port,
    user: 'root',
    key: '/nonexistent/key',
    known_hosts: '/dev/null',
    host_key_alias: 'rm-ctrlc.vm',
    has_sshd: true,
    // No agent: a command goes over ssh (with an agent and no terminal it would take the agent).
    agent: false,
  };
  const runner = {
    run: async () => {
      onProbe();
      return { code: 255, stdout: '', stderr: 'ssh: connect to host 127.0.0.1: Connection refused' };
    },
  } as unknown as CommandRunner;
  const { ctx, calls, out } = fakeCli(info, runner);
  const r = await runVm(ctx, undefined, { rm: true }, ['true']);
  return { code: r.code, err: out.err, calls };
}

test('vm run: ssh exits 255 without a Ctrl-C: the failure is named, exit 125, the --rm VM is deleted', async () => {
  const r = await runWithDeadSsh(() => undefined);
  assert.equal(r.code, 125);
  assert.match(r.err, /the ssh connection to VM "rm-ctrlc" failed/);
  assert.deepEqual(r.calls, ['vm.create', 'vm.ssh_info', 'vm.delete']);
});

test('vm run: a Ctrl-C whose SIGINT is handled only after ssh exited 255 is an interrupt: exit 130, VM deleted', async () => {
  // Under load the CLI can handle ssh's exit before the SIGINT of the same Ctrl-C (both pending at
  // once): the SIGINT lands while the failure probe runs, after the exit status was read.
  const r = await runWithDeadSsh(() => process.emit('SIGINT'));
  assert.equal(r.code, 130, r.err);
  assert.match(r.err, /\nbanger: interrupted\n$/);
  assert.doesNotMatch(r.err, /ssh connection/);
  assert.deepEqual(r.calls, ['vm.create', 'vm.ssh_info', 'vm.delete']);
});

/** A one-file checkout in a temp dir. */
async function tinyRepo(t: import('node:test').TestContext): Promise<string> {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const d = mkdtempSync(join(tmpdir(), 'banger-run-ws-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  writeFileSync(join(d, 'f.txt'), 'x\n');
  const git = new NodeRunner();
  await git.check(['git', '-C', d, 'init', '-q']);
  await git.check(['git', '-C', d, 'add', 'f.txt']);
  return d;
}

/** vm run PATH against a fake daemon (sshd image); git runs for real, ssh (the tar -x) answers `sshCode`. */
async function runWorkspace(
  path: string,
  opts: { dryRun?: boolean; rm?: boolean; from?: string },
  sshCode: number,
): Promise<{ code: number | undefined; text: string | undefined; err: string; calls: string[]; ssh: number }> {
  const real = new NodeRunner();
  let ssh = 0;
  const runner = {
    run: async (argv: readonly string[], o?: { stdin?: AsyncIterable<Uint8Array> }) => {
      if (argv[0] === 'git') return real.run(argv);
      // The probe (no stdin): a guest without git and an empty /root/repo.
      if (!o?.stdin) return { code: 0, stdout: 'nogit\nempty\n', stderr: '' };
      ssh++;
      if (o?.stdin) for await (const chunk of o.stdin) void chunk;
      return { code: sshCode, stdout: '', stderr: 'tar: something broke\n' };
    },
  } as unknown as CommandRunner;
  const { ctx, calls, out } = fakeCli(
    {
      name: 'ws',
      host: '127.0.0.1',
      port: 1,
      user: 'root',
      key: '/nonexistent/key',
      known_hosts: '/dev/null',
      host_key_alias: 'ws.vm',
      has_sshd: true,
      agent: true,
    },
    runner,
  );
  const r = await runVm(ctx, path, opts, ['true']);
  return { code: r.code, text: r.text, err: out.err + (r.err ?? ''), calls, ssh };
}

test('vm run PATH --dry-run lists the files and calls the daemon not at all', async (t) => {
  const repo = await tinyRepo(t);
  const r = await runWorkspace(repo, { dryRun: true }, 0);
  assert.equal(r.text, 'f.txt\n');
  assert.deepEqual(r.calls, []);
  assert.equal(r.ssh, 0);
});

test('vm run PATH: a workspace that fails to ship deletes the VM (even without --rm), exit 125, the guest tar named', async (t) => {
  const repo = await tinyRepo(t);
  const r = await runWorkspace(repo, {}, 2);
  assert.equal(r.code, 125);
  assert.match(r.err, /unpacking the workspace into ws:\/root\/repo failed \(exit 2\)/);
  assert.match(r.err, /tar: something broke/);
  assert.deepEqual(r.calls, ['vm.create', 'vm.ssh_info', 'vm.delete']);
});

test('vm run PATH --from another commit into a guest without git: refused (no wrong files), the VM deleted', async (t) => {
  const repo = await tinyRepo(t);
  const git = new NodeRunner();
  const id = ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid'];
  await git.check(['git', '-C', repo, ...id, 'commit', '-q', '-m', 'one']);
  await git.check(['git', '-C', repo, ...id, 'commit', '-q', '--allow-empty', '-m', 'two']);
  const r = await runWorkspace(repo, { from: 'HEAD~1' }, 0);
  assert.equal(r.code, 125);
  assert.match(r.err, /VM ws has no git: --from [0-9a-f]{12} \(not the work tree's HEAD\) cannot be checked out there/);
  assert.equal(r.ssh, 0, 'nothing shipped');
  assert.deepEqual(r.calls, ['vm.create', 'vm.ssh_info', 'vm.delete']);
});
