import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BOOTSTRAP_SCRIPT, guestAssets } from './assets.js';

test('boot speed (issue 16): every image masks udev driver autoload and e2scrub_reap', () => {
  const { files, symlinks } = guestAssets();
  const udev = files.find((f) => f.path === '/etc/udev/rules.d/80-drivers.rules');
  assert.ok(udev && 'content' in udev, 'an /etc override of 80-drivers.rules (same name masks the /lib one)');
  assert.ok(!/RUN|kmod/.test(udev.content), 'the override loads nothing: comments only');
  assert.deepEqual(
    symlinks.filter((s) => s.target === '/dev/null').map((s) => s.path),
    ['/etc/systemd/system/e2scrub_reap.service'],
  );
});

test('boot speed (issue 16): the bootstrap reads files with read, never by forking cat or uname', () => {
  const cases = [
    { what: 'cat in a command substitution', re: /\$\(\s*cat\b/ },
    { what: 'uname in a command substitution', re: /\$\(\s*uname\b/ },
  ];
  for (const c of cases) assert.doesNotMatch(BOOTSTRAP_SCRIPT, c.re, c.what);
  // What it still has to read: the command line, disk serials, the kernel release, MACs.
  for (const file of ['/proc/cmdline', '"$d/serial"', '/proc/sys/kernel/osrelease', '"$n/address"'])
    assert.ok(BOOTSTRAP_SCRIPT.includes(`<${file}`), file);
});
