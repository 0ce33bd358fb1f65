import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeRunner } from '../../test/fakes/runner.js';
import { AppError } from '../errors.js';
import { nullLogger, quietContext } from '../services/context.js';
import type { ImageRow } from '../store/images.js';
import { pullWithSshd, type SshdPullDeps } from './install-sshd.js';

/*
 * pullWithSshd's bookkeeping with fakes (install-run.test.ts covers the
 * install, install-sshd.test.ts in test/integration the whole path): what is
 * refused before anything is pulled, and that a failed install removes the
 * temporary image.
 */

function fakes(o: { taken?: string[]; createFails?: boolean } = {}) {
  const events: string[] = [];
  const rows = new Map<string, ImageRow>();
  const d: SshdPullDeps = {
    images: {
      find: (n: string) => (o.taken?.includes(n) ? ({ name: n } as ImageRow) : rows.get(n)),
      pull: async (p) => {
        events.push(`pull ${p.ref} as ${p.name?.replace(/[0-9a-f]{8}$/, 'X')} install_sshd=${p.install_sshd}`);
        const row = { id: 'i1', name: p.name as string, dir: '/nonexistent' } as ImageRow;
        rows.set(row.name, row);
        return row;
      },
      delete: async (n: string) => {
        events.push(`delete image ${n.replace(/[0-9a-f]{8}$/, 'X')}`);
        rows.delete(n);
        return { name: n };
      },
    } as SshdPullDeps['images'],
    repo: { rename: () => events.push('rename'), get: () => undefined },
    vms: {
      create: async () => {
        events.push('create vm');
        throw new AppError('operation_failed', 'the VM did not boot');
      },
    } as unknown as SshdPullDeps['vms'],
    vmRepo: { byName: () => undefined },
    agents: { use: async () => assert.fail('no agent use expected') },
    runner: new FakeRunner(),
    log: nullLogger,
    checkEgress: async () => void events.push('egress'),
    allowOutbound: true,
  };
  return { d, events, rows };
}

const isApp = (code: string, re: RegExp) => (e: unknown) =>
  e instanceof AppError && e.code === code && re.test(e.message);

test('pullWithSshd: a taken name, a bad name and a bundle without --name are refused before the egress check or any pull', async () => {
  const { d, events } = fakes({ taken: ['app-v1'] });
  await assert.rejects(
    pullWithSshd(d, { ref: '127.0.0.1:5000/team/app:v1' }, quietContext()),
    isApp('already_exists', /image "app-v1" already exists/),
  );
  await assert.rejects(
    pullWithSshd(d, { ref: 'x/y:1', name: 'Bad!' }, quietContext()),
    isApp('bad_request', /invalid image name/),
  );
  await assert.rejects(
    pullWithSshd(d, { ref: 'file:///tmp/b.tar.zst', sha256: 'a'.repeat(64) }, quietContext()),
    isApp('bad_request', /--install-sshd with file:\/\/\/tmp\/b.tar.zst needs --name/),
  );
  assert.deepEqual(events, []);
});

test('pullWithSshd: a failed install deletes the temporary image; the final name is never given', async () => {
  const { d, events, rows } = fakes();
  await assert.rejects(
    pullWithSshd(d, { ref: '127.0.0.1:5000/team/app:v1', install_sshd: true }, quietContext()),
    isApp('operation_failed', /the VM did not boot/),
  );
  assert.deepEqual(events, [
    'egress',
    'pull 127.0.0.1:5000/team/app:v1 as app-v1.install-X install_sshd=undefined',
    'create vm',
    'delete image app-v1.install-X',
  ]);
  assert.equal(rows.size, 0);
});
