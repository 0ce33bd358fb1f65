import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Paths } from '../../system/paths.js';
import type { VmmHandles } from '../../vmm/driver.js';
import type { Logger } from '../context.js';
import { WarmStart, type WarmDeps } from './warm.js';

const log: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

test('startup after a daemon killed mid template build: the build VMM (handles.json in a row-less VM dir) is killed; VMs with rows are not touched', async () => {
  const root = mkdtempSync(join(tmpdir(), 'warm-'));
  const paths = new Paths(
    { HOME: root, XDG_STATE_HOME: join(root, 'state'), XDG_RUNTIME_DIR: join(root, 'run') },
    1000,
  );
  const handles = (pid: number): VmmHandles & { sshPort: number } => ({
    pid,
    startTime: 7,
    controlSocket: join(root, `${pid}.qmp`),
    sshPort: 22,
  });
  const dirs: [string, VmmHandles | undefined][] = [
    ['build1', handles(101)],
    ['vmrow1', handles(102)],
    ['build2', undefined],
  ];
  for (const [id, h] of dirs) {
    mkdirSync(paths.vmDir(id), { recursive: true });
    if (h) writeFileSync(join(paths.vmDir(id), 'handles.json'), JSON.stringify(h));
  }
  const killed: number[] = [];
  const driver = {
    kind: 'qemu',
    isAlive: (h: VmmHandles) => Promise.resolve(h.pid !== 0),
    kill: (h: VmmHandles) => {
      killed.push(h.pid);
      return Promise.resolve();
    },
  };
  const warm = new WarmStart({ paths, driver, log } as unknown as WarmDeps);
  await warm.killOrphanBuilds(new Set(['vmrow1']));
  assert.deepEqual(killed, [101]);
});
