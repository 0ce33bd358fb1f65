import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import type { VmSessionInfo } from '../../../api/methods.js';
import { NodeRunner } from '../../../system/node-runner.js';
import type { CommandRunner, RunOptions } from '../../../system/runner.js';
import { BOOTSTRAP_EXIT } from '../../../workspace/bootstrap.js';
import type { CliContext } from '../../context.js';
import { runVm } from './run.js';
import { fakeCli as cliWith } from '../../../../test/fakes/cli.js';

const real = new NodeRunner();
const info: VmSessionInfo = {
  name: 'boot',
  host: '127.0.0.1',
  port: 1,
  user: 'root',
  key: '/nonexistent/key',
  known_hosts: '/dev/null',
  host_key_alias: 'boot.vm',
  has_sshd: true,
  agent: true,
};

/** A repo with a .tool-versions, committed. */
async function repo(t: TestContext): Promise<string> {
  const d = mkdtempSync(join(tmpdir(), 'banger-runboot-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  writeFileSync(join(d, '.tool-versions'), 'nodejs 20.0.0\n');
  writeFileSync(join(d, 'a.txt'), 'a\n');
  const git = ['git', '-C', d, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid'];
  await real.check([...git, 'init', '-q']);
  await real.check([...git, 'add', '-A']);
  await real.check([...git, 'commit', '-q', '-m', 'init']);
  return d;
}

/**
 * git runs for real; ssh is faked: the workspace tar is drained and accepted, a streamed ssh (the
 * bootstrap) exits `bootstrapCode`. Records the remote commands.
 */
function fakeCli(bootstrapCode: number): { ctx: CliContext; calls: string[]; remote: string[]; out: { err: string } } {
  const remote: string[] = [];
  const runner = {
    run: async (argv: readonly string[], o: RunOptions = {}) => {
      if (argv[0] !== 'ssh') return real.run(argv, o);
      // The workspace probe (no stdin): a guest without git and an empty /root/repo.
      if (!o.stdin) return { code: 0, stdout: 'nogit\nempty\n', stderr: '' };
      remote.push(argv.at(-1) as string);
      if (o.stdin) for await (const _ of o.stdin) void _;
      return { code: 0, stdout: '', stderr: '' };
    },
    check: (argv: readonly string[], o?: RunOptions) => real.check(argv, o),
    stream: (argv: readonly string[]) => {
      remote.push(argv.at(-1) as string);
      return {
        stdout: Readable.from([]),
        done: Promise.resolve({ code: bootstrapCode, stdout: '', stderr: '' }),
        kill: () => undefined,
      };
    },
  } as unknown as CommandRunner;
  const { ctx, calls, out } = cliWith(info, runner);
  return { ctx, calls, remote, out };
}

test('vm run PATH with .tool-versions and no --nat: refused before any VM exists, naming --nat and --no-bootstrap', async (t) => {
  const d = await repo(t);
  const f = fakeCli(0);
  const r = await runVm(f.ctx, d, { detach: true }, undefined);
  assert.equal(r.code, 1);
  assert.deepEqual(f.calls, [], 'no daemon call: nothing created');
  assert.match(f.out.err, /pins tools for mise \(\.tool-versions\)/);
  assert.match(f.out.err, /--nat.*--no-bootstrap/);
});

test('vm run PATH --no-bootstrap: the VM is made and the workspace shipped, no mise install', async (t) => {
  const d = await repo(t);
  const f = fakeCli(0);
  const r = await runVm(f.ctx, d, { detach: true, bootstrap: false }, undefined);
  assert.equal(r.code ?? 0, 0, f.out.err);
  assert.deepEqual(f.calls, ['vm.create', 'vm.ssh_info', 'vm.workspace_set']);
  assert.equal(f.remote.length, 1, 'only the workspace unpack ran in the guest');
  assert.ok(!f.remote.some((c) => c.includes('mise')));
});

test('vm run PATH --nat -d: mise install waited for; an image without mise gives a warning and the run goes on', async (t) => {
  const d = await repo(t);
  const f = fakeCli(BOOTSTRAP_EXIT.noMise);
  const r = await runVm(f.ctx, d, { detach: true, nat: true }, undefined);
  assert.equal(r.code ?? 0, 0, f.out.err);
  assert.equal(f.remote.length, 2);
  assert.match(f.remote[1] ?? '', /mise install/);
  assert.match(f.remote[1] ?? '', / wait /, 'a detached run waits for it');
  assert.match(f.out.err, /warning: the repo pins tools for mise but VM boot has no mise/);
});
