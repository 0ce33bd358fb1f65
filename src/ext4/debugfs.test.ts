import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { AppError } from '../errors.js';
import { Flattener } from '../imagepull/flatten.js';
import { NodeRunner } from '../system/node-runner.js';
import {
  debugfsErrors,
  debugfsQuote,
  existingPaths,
  injectScript,
  ownershipScript,
  probeScript,
  type InjectPlan,
  type OwnershipEntry,
} from './debugfs.js';

function assertBadRequest(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof AppError, String(err));
    assert.equal(err.code, 'bad_request');
    assert.match(err.message, pattern);
    return true;
  });
}

test('debugfsQuote', () => {
  const ok: [string, string][] = [
    ['/usr/bin/sudo', '"/usr/bin/sudo"'],
    ['/with space/f 2', '"/with space/f 2"'],
    ['/back\\slash', '"/back\\slash"'],
    ["/semi;colon'$HOME*#", '"/semi;colon\'$HOME*#"'],
    ['/ünïcode', '"/ünïcode"'],
    ['relative/target', '"relative/target"'],
    // libss (debugfs's command parser) reads "" inside quotes as one literal quote.
    ['/a"b', '"/a""b"'],
    ['/state/a b,"c"/f', '"/state/a b,""c""/f"'],
    ['"', '""""'],
  ];
  for (const [input, want] of ok) assert.equal(debugfsQuote(input), want, input);
  const bad: [string, RegExp][] = [
    ['/a\nb', /control character/],
    ['/a\rb', /control character/],
    ['/a\tb', /control character/],
    ['/a\u007fb', /control character/],
    ['', /empty/],
    [`/${'x'.repeat(4095)}`, /longer than 4095 bytes/],
  ];
  for (const [input, pattern] of bad) assertBadRequest(() => debugfsQuote(input), pattern);
});

test('ownershipScript', () => {
  const meta = new Map<string, OwnershipEntry>([
    ['usr/bin/sudo', { uid: 0, gid: 0, mode: 0o4755, type: 'file' }],
    ['usr', { uid: 0, gid: 0, mode: 0o755, type: 'dir' }],
    ['tmp', { uid: 0, gid: 0, mode: 0o1777, type: 'dir' }],
    ['usr/bin/sudoedit', { uid: 0, gid: 0, mode: 0o4755, type: 'hardlink' }],
    ['sbin/init', { uid: 0, gid: 0, mode: 0o777, type: 'symlink' }],
    ['home/u/my file', { uid: 100000, gid: 100001, mode: 0o600, type: 'file' }],
  ]);
  assert.equal(
    ownershipScript(meta),
    [
      'sif "/home/u/my file" mode 0100600',
      'sif "/home/u/my file" uid 100000',
      'sif "/home/u/my file" gid 100001',
      'sif "/sbin/init" mode 0120777',
      'sif "/sbin/init" uid 0',
      'sif "/sbin/init" gid 0',
      'sif "/tmp" mode 041777',
      'sif "/tmp" uid 0',
      'sif "/tmp" gid 0',
      'sif "/usr" mode 040755',
      'sif "/usr" uid 0',
      'sif "/usr" gid 0',
      'sif "/usr/bin/sudo" mode 0104755',
      'sif "/usr/bin/sudo" uid 0',
      'sif "/usr/bin/sudo" gid 0',
      '',
    ].join('\n'),
  );
  assert.equal(ownershipScript(new Map()), '');
});

test('ownershipScript rejects what debugfs cannot carry', () => {
  const cases: [string, OwnershipEntry, RegExp][] = [
    ['a\nb', { uid: 0, gid: 0, mode: 0o644, type: 'file' }, /control character/],
    ['a', { uid: -1, gid: 0, mode: 0o644, type: 'file' }, /invalid uid/],
    ['a', { uid: 0, gid: 2 ** 32, mode: 0o644, type: 'file' }, /invalid gid/],
    ['a', { uid: 0, gid: 0, mode: 0o10644, type: 'file' }, /invalid mode/],
    ['a/../b', { uid: 0, gid: 0, mode: 0o644, type: 'file' }, /not normalised/],
    [`${'n'.repeat(256)}`, { uid: 0, gid: 0, mode: 0o644, type: 'file' }, /longer than 255 bytes/],
  ];
  for (const [rel, entry, pattern] of cases) assertBadRequest(() => ownershipScript(new Map([[rel, entry]])), pattern);
});

test('injectScript', () => {
  const cases: { name: string; plan: InjectPlan; want: string[] }[] = [
    {
      name: 'file with defaults, ancestors shallow-first and deduplicated',
      plan: {
        files: [
          { path: '/etc/banger/agent.toml', hostSource: '/var/lib/banger/agent.toml', mode: 0o600 },
          { path: '/etc/banger/keys/id', hostSource: '/tmp/id key', mode: 0o400, uid: 1000, gid: 1001 },
        ],
      },
      want: [
        'mkdir "/etc"',
        'mkdir "/etc/banger"',
        'mkdir "/etc/banger/keys"',
        'rm "/etc/banger/agent.toml"',
        'write "/var/lib/banger/agent.toml" "/etc/banger/agent.toml"',
        'sif "/etc/banger/agent.toml" mode 0100600',
        'sif "/etc/banger/agent.toml" uid 0',
        'sif "/etc/banger/agent.toml" gid 0',
        'rm "/etc/banger/keys/id"',
        'write "/tmp/id key" "/etc/banger/keys/id"',
        'sif "/etc/banger/keys/id" mode 0100400',
        'sif "/etc/banger/keys/id" uid 1000',
        'sif "/etc/banger/keys/id" gid 1001',
      ],
    },
    {
      name: 'dirs and symlinks',
      plan: {
        dirs: [{ path: '/var/lib/banger' }, { path: '/root/.ssh', mode: 0o700 }],
        files: [{ path: '/usr/local/bin/banger-agent', hostSource: '/opt/agent', mode: 0o755 }],
        symlinks: [
          {
            path: '/etc/systemd/system/multi-user.target.wants/banger.service',
            target: '/etc/systemd/system/banger.service',
          },
        ],
      },
      want: [
        'mkdir "/etc"',
        'mkdir "/root"',
        'mkdir "/usr"',
        'mkdir "/var"',
        'mkdir "/etc/systemd"',
        'mkdir "/root/.ssh"',
        'mkdir "/usr/local"',
        'mkdir "/var/lib"',
        'mkdir "/etc/systemd/system"',
        'mkdir "/usr/local/bin"',
        'mkdir "/var/lib/banger"',
        'mkdir "/etc/systemd/system/multi-user.target.wants"',
        'rm "/usr/local/bin/banger-agent"',
        'write "/opt/agent" "/usr/local/bin/banger-agent"',
        'sif "/usr/local/bin/banger-agent" mode 0100755',
        'sif "/usr/local/bin/banger-agent" uid 0',
        'sif "/usr/local/bin/banger-agent" gid 0',
        'sif "/var/lib/banger" mode 040755',
        'sif "/var/lib/banger" uid 0',
        'sif "/var/lib/banger" gid 0',
        'sif "/root/.ssh" mode 040700',
        'sif "/root/.ssh" uid 0',
        'sif "/root/.ssh" gid 0',
        'rm "/etc/systemd/system/multi-user.target.wants/banger.service"',
        'symlink "/etc/systemd/system/multi-user.target.wants/banger.service" "/etc/systemd/system/banger.service"',
      ],
    },
    {
      name: 'top-level file needs no mkdir',
      plan: { files: [{ path: '/hello', hostSource: 'rel/src', mode: 0o4755 }] },
      want: [
        'rm "/hello"',
        'write "rel/src" "/hello"',
        'sif "/hello" mode 0104755',
        'sif "/hello" uid 0',
        'sif "/hello" gid 0',
      ],
    },
  ];
  for (const c of cases) assert.equal(injectScript(c.plan), `${c.want.join('\n')}\n`, c.name);
  assert.equal(injectScript({ files: [] }), '');
});

test('injectScript rejects unusable plans', () => {
  const file = { hostSource: '/src', mode: 0o644 };
  const cases: [InjectPlan, RegExp][] = [
    [{ files: [{ ...file, path: 'etc/x' }] }, /not absolute/],
    [{ files: [{ ...file, path: '/' }] }, /not normalised/],
    [{ files: [{ ...file, path: '/etc/' }] }, /not normalised/],
    [{ files: [{ ...file, path: '/etc/../x' }] }, /not normalised/],
    [{ files: [{ ...file, path: '/etc//x' }] }, /not normalised/],
    [{ files: [{ ...file, path: '/etc/\tx' }] }, /control character/],
    [{ files: [{ ...file, path: '/x', hostSource: '/a\nb' }] }, /control character/],
    [{ files: [{ ...file, path: '/x', mode: 0o100644 }] }, /invalid mode/],
    [{ files: [{ ...file, path: '/x', mode: 1.5 }] }, /invalid mode/],
    [{ files: [{ ...file, path: '/x', uid: -1 }] }, /invalid uid/],
    [{ files: [], dirs: [{ path: '/d', mode: 0o40755 }] }, /invalid mode/],
    [{ files: [], symlinks: [{ path: '/l', target: '' }] }, /empty/],
    // Each argument fits debugfs's 4095-byte limit, the whole 'write' line (8199 bytes) does not.
    [{ files: [{ ...file, path: `/${'d/'.repeat(2046)}x`, hostSource: `/${'h'.repeat(4093)}` }] }, /too long/],
  ];
  for (const [plan, pattern] of cases) assertBadRequest(() => injectScript(plan), pattern);
});

test('injectScript skips directories known to exist', () => {
  const plan: InjectPlan = {
    dirs: [{ path: '/etc/banger' }],
    files: [{ path: '/etc/banger/a', hostSource: '/src', mode: 0o644 }],
  };
  assert.equal(probeScript(plan), 'stat "/etc"\nstat "/etc/banger"\n');
  assert.equal(
    injectScript(plan, new Set(['/etc'])),
    [
      'mkdir "/etc/banger"',
      'rm "/etc/banger/a"',
      'write "/src" "/etc/banger/a"',
      'sif "/etc/banger/a" mode 0100644',
      'sif "/etc/banger/a" uid 0',
      'sif "/etc/banger/a" gid 0',
      'sif "/etc/banger" mode 040755',
      'sif "/etc/banger" uid 0',
      'sif "/etc/banger" gid 0',
      '',
    ].join('\n'),
  );
});

/** Real debugfs 1.47.0 stdout of a probe: /etc is a dir, /etc/f a file, the rest missing (errors went to stderr). */
const REAL_PROBE_STDOUT = `debugfs: stat "/etc"
Inode: 12   Type: directory    Mode:  0755   Flags: 0x80000
Generation: 0    Version: 0x00000000:00000000
User:     0   Group:     0   Project:     0   Size: 1024
File ACL: 0
Links: 2   Blockcount: 2
Fragment:  Address: 0    Number: 0    Size: 0
 ctime: 0x6b07e481:00000000 -- Thu Nov 26 07:49:21 2026
 atime: 0x6b07e481:00000000 -- Thu Nov 26 07:49:21 2026
 mtime: 0x6b07e481:00000000 -- Thu Nov 26 07:49:21 2026
crtime: 0x6b07e481:00000000 -- Thu Nov 26 07:49:21 2026
Size of extra inode fields: 32
Inode checksum: 0xa969e0e9
EXTENTS:
(0):1172
debugfs: stat "/etc/banger"
debugfs: stat "/etc/f"
Inode: 13   Type: regular    Mode:  0644   Flags: 0x80000
Generation: 0    Version: 0x00000000:00000000
User:     0   Group:     0   Project:     0   Size: 2
EXTENTS:
(0):1173
debugfs: stat "/nope/x"
debugfs: stat "/etc/f/x"
`;

test('existingPaths', () => {
  const cases: [string, string, string[]][] = [
    ['real probe output', REAL_PROBE_STDOUT, ['/etc', '/etc/f']],
    ['nothing exists', 'debugfs: stat "/a"\ndebugfs: stat "/a/b"\n', []],
    ['empty', '', []],
    [
      'path with spaces',
      'debugfs: stat "/with space"\nInode: 12   Type: directory    Mode:  0755   Flags: 0x80000\n',
      ['/with space'],
    ],
    [
      'path with quotes',
      'debugfs: stat "/a ""b"",c"\nInode: 12   Type: directory    Mode:  0755   Flags: 0x80000\n',
      ['/a "b",c'],
    ],
  ];
  for (const [name, stdout, want] of cases) assert.deepEqual([...existingPaths(stdout)].sort(), want, name);
});

/** Real debugfs 1.47.0 output for a script exercising every kind of failure (stdout, then stderr). */
const REAL_STDOUT = `debugfs: mkdir /a
debugfs: mkdir /a
debugfs: rm /a/nope
debugfs: write /tmp/hn /a/f
Allocated inode: 13
debugfs: write /tmp/hn /a/f
debugfs: sif /a/f mode 0104755
debugfs: sif /nope uid 5
debugfs: symlink /a/l /x/y
debugfs: symlink /a/l /x/y
debugfs: rm /a/l

debugfs: mkdir /b/c
debugfs: write /tmp/does-not-exist /a/g
debugfs: rm /a
debugfs: bogus
debugfs: mkdir "/a/un balanced
`;
const REAL_STDERR = `debugfs 1.47.0 (5-Feb-2023)
ext2fs_mkdir: Ext2 directory already exists while creating directory "a"
mkdir: Ext2 directory already exists 
rm: File not found by ext2_lookup while trying to resolve filename
write: Ext2 file already exists 
/nope: File not found by ext2_lookup 
ext2fs_symlink: Ext2 file already exists while creating symlink "l"
symlink: Ext2 file already exists 
/b: File not found by ext2_lookup while looking up "/b"
mkdir: File not found by ext2_lookup 
do_write_internal: No such file or directory while opening "/tmp/does-not-exist" to copy
write: No such file or directory 
rm: file is a directory
debugfs: Command not found bogus
debugfs: Unbalanced quotes in command line
`;

test('debugfsErrors', () => {
  const cases: { name: string; output: string; want: string[] }[] = [
    {
      name: 'clean run with the tolerated failures only',
      output: [
        'debugfs: mkdir "/etc"',
        'debugfs: rm "/etc/hostname"',
        'debugfs: write "/tmp/h" "/etc/hostname"',
        'Allocated inode: 14',
        'debugfs: sif "/etc/hostname" mode 0100644',
        'debugfs: rm "/etc/old"',
        '',
        'debugfs 1.47.0 (5-Feb-2023)',
        'ext2fs_mkdir: Ext2 directory already exists while creating directory "etc"',
        'mkdir: Ext2 directory already exists ',
        'rm: File not found by ext2_lookup while trying to resolve filename',
        '',
      ].join('\n'),
      want: [],
    },
    {
      name: 'every failure kind (real output)',
      output: REAL_STDOUT + REAL_STDERR,
      want: [
        'write: Ext2 file already exists',
        '/nope: File not found by ext2_lookup',
        'ext2fs_symlink: Ext2 file already exists while creating symlink "l"',
        'symlink: Ext2 file already exists',
        '/b: File not found by ext2_lookup while looking up "/b"',
        'mkdir: File not found by ext2_lookup',
        'do_write_internal: No such file or directory while opening "/tmp/does-not-exist" to copy',
        'write: No such file or directory',
        'rm: file is a directory',
        'debugfs: Command not found bogus',
        'debugfs: Unbalanced quotes in command line',
      ],
    },
    {
      name: 'image that is not ext4',
      output:
        'debugfs: mkdir /zz\ndebugfs 1.47.0 (5-Feb-2023)\ndebugfs: Bad magic number in super-block while trying to open /tmp/zero.img\nmkdir: Filesystem not open\n',
      want: [
        'debugfs: Bad magic number in super-block while trying to open /tmp/zero.img',
        'mkdir: Filesystem not open',
      ],
    },
    {
      name: 'opened without -w',
      output: 'debugfs: mkdir /zz\ndebugfs 1.47.0 (5-Feb-2023)\nmkdir: Filesystem opened read/only\n',
      want: ['mkdir: Filesystem opened read/only'],
    },
    {
      name: 'filesystem full',
      output:
        'debugfs: write /tmp/big4m /big\nAllocated inode: 12\ndebugfs: sif /big mode 0100644\ndebugfs 1.47.0 (5-Feb-2023)\nwrite: Could not allocate block in ext2 filesystem \n',
      want: ['write: Could not allocate block in ext2 filesystem'],
    },
    { name: 'empty', output: '', want: [] },
  ];
  for (const c of cases) assert.deepEqual(debugfsErrors(c.output), c.want, c.name);
});

async function tarOf(
  entries: {
    name: string;
    type: 'file' | 'directory' | 'symlink' | 'link';
    mode?: number;
    uid?: number;
    gid?: number;
    linkname?: string;
    body?: string;
  }[],
): Promise<Readable> {
  const p = pack();
  for (const { body, ...header } of entries) p.entry(header, body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Readable.from([Buffer.concat(chunks)]);
}

interface Stat {
  mode: string;
  uid: number;
  gid: number;
  type: string;
}

function parseStat(out: string): Stat {
  const m = /Type: (\S+)\s+Mode:\s+(\d+)/.exec(out);
  const o = /User:\s+(\d+)\s+Group:\s+(\d+)/.exec(out);
  assert.ok(m && o, out);
  return { type: m[1] ?? '', mode: m[2] ?? '', uid: Number(o[1]), gid: Number(o[2]) };
}

async function haveTools(runner: NodeRunner): Promise<boolean> {
  try {
    await runner.run(['mkfs.ext4', '-V']);
    await runner.run(['debugfs', '-V']);
    return true;
  } catch {
    return false;
  }
}

function workdir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'banger-debugfs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('round trip: flatten, mkfs.ext4 -d, ownership and inject scripts', async (t) => {
  const runner = new NodeRunner();
  if (!(await haveTools(runner))) return t.skip('mkfs.ext4/debugfs not installed');
  const dir = workdir(t);
  const tree = join(dir, 'tree');
  const img = join(dir, 'root.ext4');

  mkdirSync(tree);
  const flattener = new Flattener(tree, { applyOwnership: false });
  await flattener.applyLayer(
    await tarOf([
      { name: './', type: 'directory', mode: 0o755 },
      { name: './usr/bin/sudo', type: 'file', mode: 0o4755, uid: 0, gid: 0, body: 'sudo' },
      { name: './usr/bin/sudoedit', type: 'link', linkname: './usr/bin/sudo' },
      { name: './home/user/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
      { name: './home/user/my notes', type: 'file', mode: 0o600, uid: 1000, gid: 1000, body: 'notes' },
      { name: './srv/', type: 'directory', mode: 0o2775, gid: 50 },
      { name: './etc/', type: 'directory', mode: 0o755 },
      { name: './sbin/init', type: 'symlink', linkname: '/lib/systemd/systemd', mode: 0o777 },
    ]),
    'mmdebstrap',
  );
  const { meta } = flattener.result();

  const { debugfs, stat } = await realImage(runner, tree, img, 32);

  assert.deepEqual(await debugfs(ownershipScript(meta)), []);
  assert.deepEqual(await stat('/usr/bin/sudo'), { type: 'regular', mode: '04755', uid: 0, gid: 0 });
  assert.deepEqual(await stat('/usr/bin/sudoedit'), { type: 'regular', mode: '04755', uid: 0, gid: 0 });
  assert.deepEqual(await stat('/home/user'), { type: 'directory', mode: '0700', uid: 1000, gid: 1000 });
  assert.deepEqual(await stat('/home/user/my notes'), { type: 'regular', mode: '0600', uid: 1000, gid: 1000 });
  assert.deepEqual(await stat('/srv'), { type: 'directory', mode: '02775', uid: 0, gid: 50 });
  assert.deepEqual(await stat('/sbin/init'), { type: 'symlink', mode: '0777', uid: 0, gid: 0 });

  const source = join(dir, 'agent config');
  writeFileSync(source, 'token = 1\n');
  const plan: InjectPlan = {
    dirs: [{ path: '/etc/banger', mode: 0o750 }],
    files: [{ path: '/etc/banger/agent.toml', hostSource: source, mode: 0o640, gid: 50 }],
    symlinks: [
      {
        path: '/etc/systemd/system/multi-user.target.wants/banger.service',
        target: '/lib/systemd/system/banger.service',
      },
    ],
  };
  // The second run replaces what the first one wrote.
  for (const run of [1, 2]) {
    const probe = await runner.check(['debugfs', '-f', '-', img], { input: probeScript(plan) });
    const existing = existingPaths(probe.stdout);
    assert.deepEqual(
      [...existing].sort(),
      run === 1
        ? ['/etc']
        : ['/etc', '/etc/banger', '/etc/systemd', '/etc/systemd/system', '/etc/systemd/system/multi-user.target.wants'],
    );
    assert.deepEqual(await debugfs(injectScript(plan, existing)), [], `inject run ${run}`);
  }
  assert.deepEqual(await stat('/etc/banger'), { type: 'directory', mode: '0750', uid: 0, gid: 0 });
  assert.deepEqual(await stat('/etc/banger/agent.toml'), { type: 'regular', mode: '0640', uid: 0, gid: 50 });
  const cat = await runner.check(['debugfs', '-R', 'cat /etc/banger/agent.toml', img]);
  assert.equal(cat.stdout, 'token = 1\n');
  const link = await runner.check([
    'debugfs',
    '-R',
    'stat /etc/systemd/system/multi-user.target.wants/banger.service',
    img,
  ]);
  assert.match(link.stdout, /Fast link dest: "\/lib\/systemd\/system\/banger.service"/);

  const fsck = await runner.run(['e2fsck', '-fn', img]);
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
});

test('real debugfs: names with a space, a double quote and a comma, in the image and on the host', async (t) => {
  const runner = new NodeRunner();
  if (!(await haveTools(runner))) return t.skip('mkfs.ext4/debugfs not installed');
  const odd = 'a b"c,d';
  const dir = join(workdir(t), odd);
  const tree = join(dir, 'tree');
  const img = join(dir, 'root.ext4');
  mkdirSync(join(tree, odd), { recursive: true });
  writeFileSync(join(tree, odd, odd), 'from mkfs\n');
  const { debugfs, stat } = await realImage(runner, tree, img, 16);

  assert.deepEqual(
    await debugfs(
      ownershipScript(new Map([[`${odd}/${odd}`, { uid: 7, gid: 8, mode: 0o640, type: 'file' as const }]])),
    ),
    [],
  );
  assert.deepEqual(await stat(`/${odd}/${odd}`), { type: 'regular', mode: '0640', uid: 7, gid: 8 });

  const source = join(dir, `host ${odd}`);
  writeFileSync(source, 'injected\n');
  const plan: InjectPlan = {
    dirs: [{ path: `/${odd}/new ${odd}`, mode: 0o700 }],
    files: [{ path: `/${odd}/new ${odd}/${odd}`, hostSource: source, mode: 0o600 }],
    symlinks: [{ path: `/${odd}/link ${odd}`, target: `../${odd}/${odd}` }],
  };
  const probe = await runner.check(['debugfs', '-f', '-', img], { input: probeScript(plan) });
  const existing = existingPaths(probe.stdout);
  assert.deepEqual([...existing], [`/${odd}`]);
  assert.deepEqual(await debugfs(injectScript(plan, existing)), []);
  assert.deepEqual(await stat(`/${odd}/new ${odd}`), { type: 'directory', mode: '0700', uid: 0, gid: 0 });
  const cat = await runner.check(['debugfs', '-R', `cat ${debugfsQuote(`/${odd}/new ${odd}/${odd}`)}`, img]);
  assert.equal(cat.stdout, 'injected\n');
  const link = await runner.check(['debugfs', '-R', `stat ${debugfsQuote(`/${odd}/link ${odd}`)}`, img]);
  assert.match(link.stdout, /Fast link dest: "\.\.\/a b"c,d\/a b"c,d"/);

  // rdump into a host directory whose name has the same characters.
  const out = join(dir, `out ${odd}`);
  mkdirSync(out);
  const dump = await runner.check(['debugfs', '-R', `rdump ${debugfsQuote(`/${odd}`)} ${debugfsQuote(out)}`, img]);
  assert.deepEqual(debugfsErrors(dump.stdout + dump.stderr), []);
  assert.equal(readFileSync(join(out, odd, odd), 'utf8'), 'from mkfs\n');
  assert.equal(readFileSync(join(out, odd, `new ${odd}`, odd), 'utf8'), 'injected\n');

  const fsck = await runner.run(['e2fsck', '-fn', img]);
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
});

/** mkfs.ext4 -d of `tree` into a fresh `img` of `mib` MiB, with a debugfs script runner and `stat` on it. */
async function realImage(
  runner: NodeRunner,
  tree: string,
  img: string,
  mib: number,
): Promise<{ debugfs: (script: string) => Promise<string[]>; stat: (path: string) => Promise<Stat> }> {
  writeFileSync(img, '');
  truncateSync(img, mib * 1024 * 1024);
  await runner.check(['mkfs.ext4', '-q', '-F', '-d', tree, img]);
  return {
    debugfs: async (script) => {
      const res = await runner.check(['debugfs', '-w', '-f', '-', img], { input: script });
      return debugfsErrors(res.stdout + res.stderr);
    },
    stat: async (path) => parseStat((await runner.check(['debugfs', '-R', `stat ${debugfsQuote(path)}`, img])).stdout),
  };
}
