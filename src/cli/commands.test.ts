import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmView } from '../api/methods.js';
import { AppError, notFound } from '../errors.js';
import type { CliContext } from './context.js';
import { buildProgram } from './main.js';
import { makeStyle } from './render/style.js';

const VM: VmView = {
  id: '0123456789abcdef',
  name: 'dev',
  state: 'stopped',
  image: 'debian-bookworm',
  vcpu: 2,
  memory_mib: 2048,
  disk_bytes: 8 << 30,
  vmm: 'qemu',
  accel: 'tcg',
  network_mode: 'user',
  nat: false,
  ip: null,
  ssh: null,
  disk_strategy: 'qcow2',
  pid: null,
  workspace: null,
  created_at: '2026-01-01T00:00:00Z',
  boot: null,
};

/** Runs `banger argv` against a fake daemon; what it printed, its exit code and the calls it made. */
async function run(
  argv: string[],
  answer: (method: string, params: Record<string, unknown>) => unknown = () => VM,
): Promise<{ out: string; err: string; code: number | undefined; calls: [string, unknown][] }> {
  let out = '';
  let err = '';
  let code: number | undefined;
  const calls: [string, unknown][] = [];
  const ctx = {
    client: {
      call: async (method: string, params: Record<string, unknown>) => {
        calls.push([method, params]);
        return answer(method, params);
      },
    },
    out: { write: (s: string) => ((out += s), true) },
    err: { write: (s: string) => ((err += s), true) },
    style: makeStyle(false, {}),
    version: 'test',
    env: {},
  } as unknown as CliContext;
  const p = buildProgram(
    () => ctx,
    (c) => (code = c),
    () => undefined,
  );
  await p.parseAsync(argv, { from: 'user' });
  return { out, err, code, calls };
}

test('a command returns its data: --json prints it as JSON, without --json the same data as text', async () => {
  const json = await run(['vm', 'show', 'dev', '--json']);
  assert.deepEqual(JSON.parse(json.out), VM);
  assert.equal(json.code, 0);
  const text = await run(['vm', 'show', 'dev']);
  assert.match(text.out, /^name +dev$/m);
  assert.match(text.out, /^memory +2048 MiB$/m);
  assert.equal(text.code, 0);
  const list = await run(['ps', '--json'], () => [VM]);
  assert.deepEqual(JSON.parse(list.out), [VM]);
});

test('a multi-target verb reports each target; one failure makes the exit code 1 and goes to stderr', async () => {
  const r = await run(['vm', 'delete', 'dev', 'nosuch'], (method) =>
    method === 'vm.resolve'
      ? [
          { ref: 'dev', id: VM.id, name: 'dev' },
          { ref: 'nosuch', error: notFound('no VM named "nosuch"', 'run `banger vm list`') },
        ]
      : { name: 'dev' },
  );
  assert.equal(r.out, 'deleted dev\n');
  assert.match(r.err, /^banger: nosuch: no VM named "nosuch"\nhint: run `banger vm list`\n$/);
  assert.equal(r.code, 1);
});

test('vm create and vm run share the VM-spec flags and send the same params; sizes go as the user wrote them', async () => {
  const flags = ['--name', 'dev', '--image', 'img', '--vcpu', '2', '--memory', '2G', '--disk-size', '8G', '--nat'];
  const create = await run(['vm', 'create', ...flags, '--no-start']);
  const runD = await run(['vm', 'run', ...flags, '-d']);
  const spec = { name: 'dev', image: 'img', vcpu: 2, memory: '2G', disk_size: '8G', nat: true };
  assert.deepEqual(create.calls, [['vm.create', { ...spec, start: false }]]);
  assert.deepEqual(runD.calls[0], ['vm.create', { ...spec, start: true }]);
  assert.equal(create.out, 'dev\n');
  assert.equal(runD.out, 'dev\n');
  assert.equal(runD.code, 0);
});

test('vm set sends the sizing flags unparsed; a bad --vcpu is named before the daemon is asked', async () => {
  const ok = await run(['vm', 'set', 'dev', '--memory', '512M', '--disk-size', '10'], (method) =>
    method === 'vm.resolve' ? [{ ref: 'dev', id: VM.id, name: 'dev' }] : VM,
  );
  assert.deepEqual(ok.calls[1], ['vm.set', { ref: VM.id, memory: '512M', disk_size: '10' }]);
  await assert.rejects(run(['vm', 'set', 'dev', '--vcpu', '2x']), /invalid --vcpu "2x": expected a whole number/);
});

test('vm health: the agent answer as text or JSON, exit 0; an agent that does not answer is an error', async () => {
  const h = { name: 'dev', healthy: true, agent: 'banger-agent 1', protocol_version: 1, uptime_s: 42.5, sessions: 1 };
  const ok = await run(['vm', 'health', 'dev'], () => h);
  assert.equal(ok.out, 'dev: healthy (banger-agent 1, protocol 1, agent up 43s)\n');
  assert.equal(ok.code, 0);
  assert.deepEqual(ok.calls, [['vm.health', { ref: 'dev' }]]);
  assert.deepEqual(JSON.parse((await run(['vm', 'health', 'dev', '--json'], () => h)).out), h);
  // The daemon's error reaches the CLI's error path (exit status 1, message and hint on stderr).
  await assert.rejects(
    run(['vm', 'health', 'dev'], () => {
      throw new AppError('operation_failed', 'the guest agent of VM "dev" did not answer health within 10 s');
    }),
    /did not answer health within 10 s/,
  );
});

test('vm ports: one row per socket with its endpoint, "unpublished" when the host cannot reach it; --json as sent', async () => {
  const p = {
    name: 'dev',
    truncated: false,
    ports: [
      { protocol: 'tcp', address: '0.0.0.0', port: 22, uid: 0, endpoint: '127.0.0.1:40022' },
      { protocol: 'tcp', address: '::', port: 8080, uid: 1000, endpoint: null },
    ],
  };
  const text = await run(['vm', 'ports', 'dev'], () => p);
  assert.equal(
    text.out,
    [
      'PROTO  LISTEN      UID   ENDPOINT',
      'tcp    0.0.0.0:22  0     127.0.0.1:40022',
      'tcp    [::]:8080   1000  unpublished',
      '',
    ].join('\n'),
  );
  assert.deepEqual(text.calls, [['vm.ports', { ref: 'dev' }]]);
  assert.deepEqual(JSON.parse((await run(['vm', 'ports', 'dev', '--json'], () => p)).out), p);
});

test('-p is repeatable on vm create; vm publish/unpublish send the specs; vm show lists what is published', async () => {
  const created = await run(['vm', 'create', '--name', 'dev', '-p', '8080:80', '--publish', '127.0.0.1:5353:53/udp']);
  assert.deepEqual((created.calls[0]?.[1] as { publish?: string[] }).publish, ['8080:80', '127.0.0.1:5353:53/udp']);
  const r = {
    name: 'dev',
    published: [
      { protocol: 'tcp', address: '127.0.0.1', host_port: 8080, guest_port: 80, spec: '127.0.0.1:8080:80/tcp' },
    ],
  };
  const pub = await run(['vm', 'publish', 'dev', '8080:80'], () => r);
  assert.deepEqual(pub.calls, [['vm.publish', { ref: 'dev', ports: ['8080:80'] }]]);
  assert.equal(pub.out, 'dev: 127.0.0.1:8080 -> guest 80/tcp\n');
  const un = await run(['vm', 'unpublish', 'dev', '8080'], () => ({ name: 'dev', published: [] }));
  assert.deepEqual(un.calls, [['vm.unpublish', { ref: 'dev', ports: ['8080'] }]]);
  assert.equal(un.out, 'dev: no published ports\n');
  const shown = await run(['vm', 'show', 'dev'], () => ({ ...VM, published: r.published }));
  assert.match(shown.out, /^published +127\.0\.0\.1:8080:80\/tcp$/m);
});
