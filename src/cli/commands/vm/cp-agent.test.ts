import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AppError } from '../../../errors.js';
import type { DaemonClient } from '../../client.js';
import { getViaAgent, hostTarget, putViaAgent } from './cp-agent.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'cp-agent-'));
  dirs.push(d);
  return d;
};

interface Seen {
  method: string;
  params: Record<string, unknown>;
  frames: unknown[];
  ended: boolean;
}

/** A DaemonClient.stream stand-in: a get answers `file` (or `error`); a put collects the frames. */
function fakeClient(file?: { data: Buffer; mode: number }, error?: AppError): { client: DaemonClient; seen: Seen[] } {
  const seen: Seen[] = [];
  const stream = (method: string, params: Record<string, unknown>, opts: { onFrame: (f: unknown) => unknown }) => {
    const s: Seen = { method, params, frames: [], ended: false };
    seen.push(s);
    let endCall!: () => void;
    const ended = new Promise<void>((r) => (endCall = r));
    const result = (async () => {
      if (error) throw error;
      if (method === 'vm.file_get') {
        const data = file?.data ?? Buffer.alloc(0);
        for (let o = 0; o < data.length; o += 10000)
          await opts.onFrame({ data: data.subarray(o, o + 10000).toString('base64') });
        return { path: params.path, mode: file?.mode ?? 0o644, size: data.length };
      }
      await ended;
      return { path: `${params.path as string}`, mode: params.mode, size: params.size };
    })();
    result.catch(() => undefined);
    return {
      send: async (f: unknown) => void s.frames.push(f),
      end: () => {
        s.ended = true;
        endCall();
      },
      close: () => undefined,
      result,
    };
  };
  return { client: { stream } as unknown as DaemonClient, seen };
}

test('hostTarget: like cp, an existing directory or a path ending in "/" gets the guest file name', () => {
  assert.equal(hostTarget('out', '/var/log/syslog', false), 'out');
  assert.equal(hostTarget('.', '/var/log/syslog', true), 'syslog');
  assert.equal(hostTarget('d/', '/etc/hosts', false), 'd/hosts');
  assert.throws(() => hostTarget('.', '/', true), /cannot name a host file after the guest path "\/"/);
});

test('getViaAgent: the bytes and permission bits land at the destination (setuid dropped); no temporary file is left', async () => {
  const d = tmp();
  const data = randomBytes(123_457);
  const { client, seen } = fakeClient({ data, mode: 0o4750 });
  const dst = join(d, 'copy');
  assert.equal(await getViaAgent(client, 'dev', '/root/blob', dst), dst);
  assert.ok(readFileSync(dst).equals(data));
  assert.equal(statSync(dst).mode & 0o7777, 0o750);
  assert.deepEqual(seen[0]?.params, { ref: 'dev', path: '/root/blob' });
  assert.deepEqual(readdirSync(d), ['copy']);
  // Into an existing directory: under the guest file's name.
  mkdirSync(join(d, 'sub'));
  assert.equal(await getViaAgent(client, 'dev', '/root/blob', join(d, 'sub')), join(d, 'sub', 'blob'));
});

test('getViaAgent: a symlink at the destination is replaced, never written through', async () => {
  const d = tmp();
  writeFileSync(join(d, 'victim'), 'keep');
  symlinkSync(join(d, 'victim'), join(d, 'link'));
  const { client } = fakeClient({ data: Buffer.from('guest'), mode: 0o644 });
  await getViaAgent(client, 'dev', '/etc/x', join(d, 'link'));
  assert.equal(readFileSync(join(d, 'victim'), 'utf8'), 'keep');
  assert.equal(readFileSync(join(d, 'link'), 'utf8'), 'guest');
  assert.equal(statSync(join(d, 'link')).isFile(), true);
});

test('getViaAgent: a failed copy leaves neither the destination nor a temporary file', async () => {
  const d = tmp();
  const err = new AppError('operation_failed', 'VM "dev": get /nope failed in the guest: open /nope: No such file');
  const { client } = fakeClient(undefined, err);
  await assert.rejects(getViaAgent(client, 'dev', '/nope', join(d, 'f')), /VM "dev".*\/nope/);
  assert.deepEqual(readdirSync(d), []);
});

test('putViaAgent: the file in frames, with its name, mode and size; a directory is refused with a hint', async () => {
  const d = tmp();
  const data = randomBytes(200_000);
  writeFileSync(join(d, 'blob'), data, { mode: 0o750 });
  const { client, seen } = fakeClient();
  assert.equal(await putViaAgent(client, 'dev', join(d, 'blob'), '/root'), '/root');
  const s = seen[0] as Seen;
  assert.deepEqual(s.params, { ref: 'dev', path: '/root', name: 'blob', mode: 0o750, size: data.length });
  const sent = Buffer.concat(s.frames.map((f) => Buffer.from((f as { data: string }).data, 'base64')));
  assert.ok(sent.equals(data));
  assert.ok(s.frames.length > 1 && s.ended);
  await assert.rejects(
    putViaAgent(client, 'dev', d, '/root'),
    (e: AppError) => e.code === 'bad_request' && e.message.includes(d) && /sshd/.test(e.hint ?? ''),
  );
  assert.equal(seen.length, 1, 'nothing was sent for the directory');
});
