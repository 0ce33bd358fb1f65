import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NodeRunner } from '../system/node-runner.js';
import { BOOTSTRAP_SCRIPT, BOOTSTRAP_UNIT_TEXT, guestAssets } from './assets.js';

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

test('boot speed (issue 16): sshd starts right after the bootstrap, not after udev coldplug/sysinit/basic.target', () => {
  const dropin = guestAssets().files.find((f) => f.path === '/etc/systemd/system/ssh.service.d/banger-early.conf');
  assert.ok(dropin && 'content' in dropin, 'an ssh.service drop-in');
  const lines = dropin.content.split('\n');
  for (const want of [
    'DefaultDependencies=no', // no After=sysinit.target basic.target
    'After=banger-bootstrap.service', // network, work disk (authorized_keys), host key
    'Conflicts=shutdown.target', // what DefaultDependencies=no drops: sshd still stops at shutdown
    'Before=shutdown.target',
    'ExecStartPre=', // Debian's `sshd -t`: one more exec of sshd
  ])
    assert.ok(lines.includes(want), want);
  // Nothing that would stop another unit from ordering sshd after itself (a drop-in adding After=).
  assert.ok(!lines.some((l) => /^(Before=.*ssh|Requires=|BindsTo=)/.test(l)), 'no Requires/BindsTo');
  // The bootstrap still orders itself before sshd.
  assert.match(BOOTSTRAP_UNIT_TEXT, /^Before=.*\bssh\.service\b/m);
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

test('bootstrap disk_by_serial: a serial is looked up in /sys/block, a /dev/ path (firecracker) is the device', async () => {
  const fn = /^disk_by_serial\(\) \{\n[\s\S]*?\n\}\n/m.exec(BOOTSTRAP_SCRIPT)?.[0];
  assert.ok(fn, 'the bootstrap defines disk_by_serial');
  const dir = mkdtempSync(join(tmpdir(), 'bootstrap-disks-'));
  try {
    // A fake /sys/block: vda has serial banger-root, vdb banger-work, vdc none.
    for (const [dev, serial] of [
      ['vda', 'banger-root'],
      ['vdb', 'banger-work'],
      ['vdc', undefined],
    ] as const) {
      mkdirSync(join(dir, dev));
      if (serial !== undefined) writeFileSync(join(dir, dev, 'serial'), `${serial}\n`);
    }
    const script = fn.replaceAll('/sys/block', dir);
    const cases = [
      { want: 'banger-work', out: '/dev/vdb\n', code: 0 },
      { want: 'banger-root', out: '/dev/vda\n', code: 0 },
      { want: 'banger-modules', out: '', code: 1 },
      { want: '/dev/null', out: '/dev/null\n', code: 0 },
      { want: '/dev/banger-no-such-disk', out: '', code: 1 },
    ];
    for (const c of cases) {
      const r = await new NodeRunner().run(['sh', '-c', `${script}disk_by_serial "$1"`, 'sh', c.want], {
        timeoutMs: 10_000,
      });
      assert.deepEqual({ out: r.stdout, code: r.code }, { out: c.out, code: c.code }, c.want);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the bootstrap script parses under dash and busybox sh (the shells of the images banger boots)', async () => {
  const shells = [
    ['/bin/dash', '-n'],
    ['/bin/busybox', 'sh', '-n'],
  ].filter(([bin]) => existsSync(bin as string));
  assert.ok(shells.length > 0, 'dash or busybox is installed');
  for (const argv of shells) {
    const r = await new NodeRunner().run(argv, { input: BOOTSTRAP_SCRIPT, timeoutMs: 10_000 });
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
  }
});
