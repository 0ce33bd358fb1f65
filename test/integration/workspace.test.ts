/**
 * Integration (network: user mode with restrict=on, loopback only; boots VMs: run under
 * `flock /work/vm.lock`): workspaces. A git checkout shipped into a busybox-only image (no sshd,
 * no git: the files arrive through the agent's exec stdin, without .git): tracked files arrive,
 * ignored and (by default) untracked ones do not, the command runs in /root/repo and its exit status
 * passes through; a bare repo, a repo with a submodule and a path outside any repo fail before any
 * VM exists; --dry-run prints the file list and creates nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BUSYBOX, busyboxTar } from '../helpers/guest-images.js';
import { sh, TestHome } from '../helpers/home.js';
import { LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [...missingTools([...DEFAULT_VM_TOOLS, 'docker-registry', 'git']), ...(existsSync(BUSYBOX) ? [] : [BUSYBOX])],
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod busybox-static docker-registry git',
);

let home: TestHome;
let reg: LocalRegistry | undefined;
let dir: string;

function git(cwd: string, ...args: string[]): void {
  const r = sh([
    'git',
    '-C',
    cwd,
    '-c',
    'user.name=t',
    '-c',
    'user.email=t@example.invalid',
    '-c',
    'protocol.file.allow=always',
    ...args,
  ]);
  assert.equal(r.code, 0, `git ${args.join(' ')}: ${r.stderr}`);
}

/** tracked.txt and sub/x.sh committed, untracked.txt untracked, ignored.txt ignored. */
function makeRepo(name: string): string {
  const d = join(dir, name);
  mkdirSync(join(d, 'sub'), { recursive: true });
  git(d, 'init', '-q');
  writeFileSync(join(d, 'tracked.txt'), 'tracked content\n');
  writeFileSync(join(d, 'sub', 'x.sh'), 'echo x\n', { mode: 0o755 });
  writeFileSync(join(d, '.gitignore'), 'ignored.txt\n');
  git(d, 'add', '-A');
  git(d, 'commit', '-q', '-m', 'init');
  writeFileSync(join(d, 'untracked.txt'), 'untracked\n');
  writeFileSync(join(d, 'ignored.txt'), 'ignored\n');
  return d;
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'banger-it-ws-'));
  home = new TestHome('banger-it-ws-');
  reg = await LocalRegistry.start();
});

after(async () => {
  reg?.stop();
  if (!skip) {
    await home.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

async function vmNames(): Promise<string[]> {
  const r = await home.banger(['vm', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { name: string }[]).map((v) => v.name);
}

test(
  'a bare repo, a repo with a submodule and a path outside any repo fail before any VM exists',
  { skip },
  async () => {
    const bare = join(dir, 'bare.git');
    assert.equal(sh(['git', 'init', '-q', '--bare', bare]).code, 0);
    const withSub = makeRepo('withsub');
    git(withSub, 'submodule', '-q', 'add', makeRepo('child'), 'mod');
    git(withSub, 'commit', '-q', '-m', 'sub');
    const outside = join(dir, 'plain');
    mkdirSync(outside);
    for (const [path, pattern] of [
      [bare, /is a bare git repository/],
      [withSub, /has submodules \(mod\)/],
      [outside, /is not inside a git repository/],
    ] as const) {
      const r = await home.banger(['vm', 'run', '--rm', '--image', 'bb', path, '--', 'true']);
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, pattern);
      assert.match(r.stderr, /hint:/);
      assert.deepEqual(await vmNames(), [], `no VM for ${path}`);
    }
    assert.deepEqual(home.qemuPids(), []);
  },
);

test(
  '--dry-run prints the exact file list and whether untracked files are included, and creates nothing',
  { skip },
  async () => {
    const repo = makeRepo('dry');
    const r = await home.banger(['vm', 'run', '--image', 'bb', repo, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '.gitignore\nsub/x.sh\ntracked.txt\n');
    assert.match(r.stderr, /untracked files not included \(1 left out\)/);
    const inc = await home.banger(['vm', 'run', '--image', 'bb', repo, '--dry-run', '--include-untracked']);
    assert.equal(inc.stdout, '.gitignore\nsub/x.sh\ntracked.txt\nuntracked.txt\n');
    assert.match(inc.stderr, /untracked files included/);
    assert.deepEqual(await vmNames(), []);
  },
);

test(
  'busybox image: `vm run --rm --image bb REPO -- cmd` ships tracked files only to /root/repo, runs there, exits with its status',
  { skip, timeout: 15 * 60_000 },
  async () => {
    await home.banger(['image', 'delete', 'bb']);
    await pushImage((reg as LocalRegistry).port, 'test/busybox', 'v1', [
      { tar: await busyboxTar(), compression: 'gzip' },
    ]);
    const p = await home.banger([
      'image',
      'pull',
      `127.0.0.1:${(reg as LocalRegistry).port}/test/busybox:v1`,
      '--name',
      'bb',
    ]);
    assert.equal(p.code, 0, p.stderr);
    const repo = makeRepo('run');
    const r = await home.banger(
      [
        'vm',
        'run',
        '--rm',
        '--image',
        'bb',
        repo,
        '--',
        'sh',
        '-c',
        'cat tracked.txt; test ! -e ignored.txt; test ! -e untracked.txt; test -x sub/x.sh && pwd; exit 5',
      ],
      600_000,
    );
    assert.equal(r.stdout, 'tracked content\n/root/repo\n', r.stderr);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /note: 1 untracked file not shipped \(--include-untracked ships them\)/);
    assert.match(r.stderr, /warning: .*without \.git/);
    assert.deepEqual(await vmNames(), [], '--rm deleted the VM');
    assert.deepEqual(home.qemuPids(), [], 'no qemu left');
  },
);
