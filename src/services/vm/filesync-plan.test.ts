import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestTarget, hostSource, planFileSync } from './filesync-plan.js';

function tmp(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'banger-fsync-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test("guestTarget and hostSource: ~/ is root's home in the guest, the daemon's home on the host", () => {
  const guest: [string, string][] = [
    ['~/.gitconfig', '/root/.gitconfig'],
    ['/root/.config/x/', '/root/.config/x'],
    ['~/a//b', '/root/a/b'],
  ];
  for (const [g, want] of guest) assert.equal(guestTarget(g), want, g);
  const host: [string, string][] = [
    ['~/.gitconfig', '/home/u/.gitconfig'],
    ['~', '/home/u'],
    ['/etc/x', '/etc/x'],
    ['rel/x', 'rel/x'],
  ];
  for (const [h, want] of host) assert.equal(hostSource(h, '/home/u'), want, h);
});

test('planFileSync: files, directories recursively, missing paths and links as warnings naming the entry', async (t) => {
  const d = tmp(t);
  writeFileSync(join(d, 'gitconfig'), '[user]\n');
  mkdirSync(join(d, 'conf', 'sub'), { recursive: true });
  writeFileSync(join(d, 'conf', 'a'), 'a');
  writeFileSync(join(d, 'conf', 'sub', 'b'), 'bb');
  symlinkSync('/etc/passwd', join(d, 'conf', 'link'));
  const plan = await planFileSync(
    [
      { host: '~/gitconfig', guest: '~/.gitconfig', mode: 0o600 },
      { host: join(d, 'conf'), guest: '/root/.config/tool', mode: 0o640 },
      { host: join(d, 'missing'), guest: '~/m', mode: 0o600 },
    ],
    d,
  );
  assert.deepEqual(
    plan.files.map((f) => [f.host.slice(d.length), f.guest, f.mode.toString(8), f.size]),
    [
      ['/gitconfig', '/root/.gitconfig', '600', 7],
      ['/conf/a', '/root/.config/tool/a', '640', 1],
      ['/conf/sub/b', '/root/.config/tool/sub/b', '640', 2],
    ],
  );
  assert.deepEqual(plan.dirs, ['/root/.config/tool', '/root/.config/tool/sub']);
  assert.equal(plan.warnings.length, 2);
  assert.match(plan.warnings[0] ?? '', /^file_sync\[1\] .*conf\/link is not a regular file or a directory; skipped$/);
  assert.match(plan.warnings[1] ?? '', /^file_sync\[2\] \(host = ".*missing"\): .*missing does not exist; skipped$/);
});

test('planFileSync: the count and byte bounds stop the copy with a warning', async (t) => {
  const d = tmp(t);
  for (let i = 0; i < 5; i++) writeFileSync(join(d, `f${i}`), 'xxxx');
  const cases: [{ files: number; bytes: number }, number][] = [
    [{ files: 3, bytes: 1000 }, 3],
    [{ files: 100, bytes: 10 }, 2],
    [{ files: 100, bytes: 1000 }, 5],
  ];
  for (const [limits, n] of cases) {
    const plan = await planFileSync([{ host: d, guest: '~/d', mode: 0o600 }], d, limits);
    assert.equal(plan.files.length, n, JSON.stringify(limits));
    assert.equal(plan.warnings.length, n === 5 ? 0 : 1, JSON.stringify(limits));
    if (n < 5) assert.match(plan.warnings[0] ?? '', /^file_sync\[0\] .*stopped at/);
  }
});
