import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { imageRow, vmRow } from '../../../test/helpers/rows.js';
import type { AgentClient } from '../../agent/client.js';
import type { VmView } from '../../api/views.js';
import type { ProgressEvent } from '../../api/protocol.js';
import { nullLogger, type OpContext } from '../context.js';
import { FileSync } from './filesync.js';

function tmp(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'banger-fsync-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** An agent that records mkdir argv and puts; a put of `failPath` fails like a guest error. */
function fakeAgent(failPath?: string): {
  calls: { execs: string[][]; puts: [string, string, number][] };
  agents: { use: <T>(vm: unknown, fn: (c: AgentClient) => Promise<T>) => Promise<T> };
} {
  const calls = { execs: [] as string[][], puts: [] as [string, string, number][] };
  const c = {
    isOpen: true,
    exec: (o: { argv: string[] }) => {
      calls.execs.push(o.argv);
      return {
        stdout: Readable.from([]),
        stderr: Readable.from([]),
        exit: Promise.resolve({ kind: 'exited', code: 0 }),
      };
    },
    putFile: async (path: string, data: Buffer, o: { mode: number }) => {
      if (path === failPath) throw new Error('agent error: Permission denied');
      calls.puts.push([path, data.toString(), o.mode]);
    },
  } as unknown as AgentClient;
  return { calls, agents: { use: (_vm, fn) => fn(c) } };
}

function ctx(events: ProgressEvent[]): OpContext {
  return { opId: 't', signal: new AbortController().signal, progress: (e) => events.push(e) };
}

const view = (state: string): VmView => ({ id: 'v1', name: 'dev', state }) as VmView;

test('FileSync: copies each file with its mode after the boot; a failure or a missing path is a warning, the rest is copied', async (t) => {
  const d = tmp(t);
  writeFileSync(join(d, 'a'), 'A');
  writeFileSync(join(d, 'b'), 'B');
  const { calls, agents } = fakeAgent('/root/.b');
  const events: ProgressEvent[] = [];
  const sync = new FileSync({
    entries: [
      { host: join(d, 'a'), guest: '~/.config/a', mode: 0o600 },
      { host: join(d, 'b'), guest: '~/.b', mode: 0o644 },
      { host: join(d, 'c'), guest: '~/.c', mode: 0o600 },
      { host: join(d, 'a'), guest: '/root/a2', mode: 0o755 },
    ],
    home: d,
    vms: { get: () => vmRow({ id: 'v1', name: 'dev', state: 'running', imageId: 'i1' }) },
    images: { get: () => imageRow({ id: 'i1', assetsVersion: 3 }) },
    agents,
    log: nullLogger,
  });
  const v = view('running');
  assert.equal(await sync.afterBoot(v, ctx(events)), v);
  assert.deepEqual(calls.execs, [['mkdir', '-p', '-m', '0700', '--', '/root/.config']]);
  assert.deepEqual(calls.puts, [
    ['/root/.config/a', 'A', 0o600],
    ['/root/a2', 'A', 0o755],
  ]);
  const warnings = events.filter((e) => e.message.startsWith('warning:')).map((e) => e.message);
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings[0] ?? '', /file_sync\[2\] .* does not exist/);
  assert.match(warnings[1] ?? '', /dev:\/root\/.b: agent error: Permission denied/);
});

test('FileSync: nothing for a VM that is not running, or without entries; a warning for an image without the agent', async () => {
  const { calls, agents } = fakeAgent();
  const events: ProgressEvent[] = [];
  const deps = {
    home: '/nonexistent',
    vms: { get: () => vmRow({ id: 'v1', name: 'dev', state: 'running', imageId: 'i1' }) },
    images: { get: () => imageRow({ id: 'i1', assetsVersion: 2 }) },
    agents,
    log: nullLogger,
  };
  const entries = [{ host: '/etc/hostname', guest: '~/h', mode: 0o600 }];
  await new FileSync({ ...deps, entries }).afterBoot(view('stopped'), ctx(events));
  await new FileSync({ ...deps, entries: [] }).afterBoot(view('running'), ctx(events));
  assert.equal(events.length, 0);
  await new FileSync({ ...deps, entries }).afterBoot(view('running'), ctx(events));
  assert.match(events[0]?.message ?? '', /^warning: VM dev: its image has no guest agent/);
  assert.deepEqual(calls, { execs: [], puts: [] });
});
