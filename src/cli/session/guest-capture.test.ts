import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import type { VmSessionInfo } from '../../api/methods.js';
import { AppError } from '../../errors.js';
import type { CommandRunner } from '../../system/runner.js';
import type { DaemonClient } from '../client.js';
import { captureFromGuest } from './guest-capture.js';

const info = (has_sshd: boolean): VmSessionInfo => ({
  name: 'dev',
  host: '127.0.0.1',
  port: 2222,
  user: 'root',
  key: '/k',
  known_hosts: '/kh',
  host_key_alias: 'dev.vm',
  has_sshd,
  agent: true,
});

/** ssh whose stdout is `chunks`, exiting `code`; records argv and whether it was killed. */
function sshRunner(
  chunks: Buffer[],
  code: number,
): { runner: CommandRunner; seen: { argv: string[]; killed: boolean } } {
  const seen = { argv: [] as string[], killed: false };
  const runner = {
    stream: (argv: string[]) => {
      seen.argv = argv;
      return {
        stdout: Readable.from(chunks),
        done: Promise.resolve({ code, stdout: '', stderr: 'err tail' }),
        kill: () => (seen.killed = true),
      };
    },
  } as unknown as CommandRunner;
  return { runner, seen };
}

test('captureFromGuest over ssh: stdout to the sink in order, the exit status and stderr back; argv quoted as one remote command', async () => {
  const { runner, seen } = sshRunner([Buffer.from('ab'), Buffer.from('cd')], 3);
  const got: string[] = [];
  const r = await captureFromGuest(runner, {} as DaemonClient, {
    vm: 'dev',
    info: info(true),
    argv: ['sh', '-c', 'echo "$1"', 'sh', "it's"],
    sink: async (b) => void got.push(b.toString()),
    limit: 100,
    what: 'the patch',
  });
  assert.deepEqual(got, ['ab', 'cd']);
  assert.deepEqual(r, { code: 3, stderr: 'err tail', bytes: 4 });
  assert.equal(seen.argv[0], 'ssh');
  assert.equal(seen.argv.at(-1), `sh -c 'echo "$1"' sh 'it'"'"'s'`);
});

test('captureFromGuest: more than the limit stops the command and fails, over ssh and over the agent', async () => {
  const big = [Buffer.alloc(60), Buffer.alloc(60)];
  const { runner, seen } = sshRunner(big, 0);
  const opts = { vm: 'dev', argv: ['cat'], sink: async () => undefined, limit: 100, what: 'the patch' };
  await assert.rejects(
    captureFromGuest(runner, {} as DaemonClient, { ...opts, info: info(true) }),
    (e: unknown) => e instanceof AppError && /the patch from VM "dev" is larger than 100 bytes/.test(e.message),
  );
  assert.ok(seen.killed, 'ssh killed');
  let closed = false;
  const client = {
    stream: (_m: string, _p: unknown, o: { onFrame: (f: unknown) => Promise<void> }) => {
      let settle!: (v: unknown) => void;
      const result = new Promise((res) => (settle = res));
      return {
        send: async () => {
          for (const b of big) await o.onFrame({ stdout: b.toString('base64') });
          settle({ exit_code: 0 });
        },
        close: () => (closed = true),
        result,
      };
    },
  } as unknown as DaemonClient;
  await assert.rejects(
    captureFromGuest({} as CommandRunner, client, { ...opts, info: info(false) }),
    (e: unknown) => e instanceof AppError && /larger than 100 bytes/.test(e.message),
  );
  assert.ok(closed, 'the agent call closed');
});
