/**
 * Integration (network: user mode with restrict=on, loopback only; boots VMs: run under
 * `flock /work/vm.lock`): workspaces. A git checkout shipped into a busybox-only image (no sshd,
 * no git: the files arrive through the agent's exec stdin, without .git): tracked files arrive,
 * ignored and (by default) untracked ones do not, the command runs in /root/repo and its exit status
 * passes through; a bare repo, a repo with a submodule and a path outside any repo fail before any
 * VM exists; --dry-run prints the file list and creates nothing. Then one VM of a Debian image with
 * sshd and git (the default image has both): a real shallow checkout, --from/--branch, the config
 * filter and identity seen in the guest, re-prepare refusal and --force, vm exec, the WORKSPACE column.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BUSYBOX, busyboxTar } from '../helpers/guest-images.js';
import { sh, TestHome } from '../helpers/home.js';
import { debianBaseTar, LocalRegistry, pushImage } from '../helpers/oci-push.js';
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

/** Debian with systemd, sshd and git (what the default image has), cached under .test-cache/. */
const GIT_PACKAGES = ['systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'openssh-server', 'iproute2', 'sudo', 'git'];

test(
  'git image: a shallow checkout at /root/repo (status clean, log), --from/--branch, config filter, identity, re-prepare, vm exec, WORKSPACE',
  { skip, timeout: 25 * 60_000 },
  async () => {
    const port = (reg as LocalRegistry).port;
    await home.banger(['vm', 'delete', 'wsg']); // one an earlier run left in a kept home (BANGER_TEST_HOME)
    await home.banger(['image', 'delete', 'dg']);
    await pushImage(port, 'test/debgit', 'v1', [
      { tar: readFileSync(debianBaseTar(GIT_PACKAGES)), compression: 'gzip' },
    ]);
    const p = await home.banger(['image', 'pull', `127.0.0.1:${port}/test/debgit:v1`, '--name', 'dg']);
    assert.equal(p.code, 0, p.stderr);
    const repo = makeRepo('gitrepo');
    for (let i = 1; i <= 60; i++) {
      writeFileSync(join(repo, 'log.txt'), `${i}\n`);
      git(repo, 'add', 'log.txt');
      git(repo, 'commit', '-q', '-m', `c${i}`);
    }
    git(repo, 'config', 'user.name', 'Repo Person');
    git(repo, 'config', 'user.email', 'repo@example.invalid');
    git(repo, 'config', 'core.hooksPath', '/host/hooks');
    git(repo, 'config', 'credential.helper', 'store');
    git(repo, 'config', 'http.extraHeader', 'Authorization: Bearer SECRET');
    git(repo, 'remote', 'add', 'origin', 'https://u:TOKEN@example.invalid/r.git');
    git(repo, 'branch', 'old', 'HEAD~55');
    const hostHead = sh(['git', '-C', repo, 'rev-parse', 'HEAD']).stdout.trim();
    // The host user's global identity (this home's HOME).
    writeFileSync(
      join(home.env.HOME as string, '.gitconfig'),
      '[user]\n\tname = Host Global\n\temail = global@example.invalid\n',
    );

    const r = await home.banger(['vm', 'run', '-d', '--name', 'wsg', '--image', 'dg', repo], 600_000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /git history: 50 commits up to [0-9a-f]{12} on branch (master|main)/);
    assert.doesNotMatch(r.stderr, /without \.git/);
    const exec = (...cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      home.banger(['vm', 'exec', 'wsg', '--', ...cmd], 300_000);

    // A real checkout: clean, 50 commits of history, shallow, no remotes, filtered config, identities.
    const st = await exec(
      'sh',
      '-c',
      'pwd; git status --porcelain; git rev-list --count HEAD; git rev-parse --is-shallow-repository HEAD',
    );
    assert.equal(st.stdout, `/root/repo\n50\ntrue\n${hostHead}\n`, st.stderr);
    const cfg = await exec('git', 'config', '--list', '--show-origin');
    assert.equal(cfg.code, 0, cfg.stderr);
    assert.match(cfg.stdout, /file:\.git\/config\s+user\.name=Repo Person/);
    assert.match(cfg.stdout, /user\.name=Host Global/);
    assert.doesNotMatch(cfg.stdout, /hookspath|credential|extraheader|remote\.|TOKEN|SECRET/i);
    assert.equal((await exec('git', 'log', '-1', '--format=%s')).stdout, 'c60\n');

    // vm exec: exit status verbatim, arguments exactly, --guest-path.
    const args = ['a b', "it's", '$HOME', '', '*'];
    const q = await exec('sh', '-c', 'for a in "$@"; do printf "[%s]" "$a"; done; exit 7', 'sh', ...args);
    assert.equal(q.code, 7, q.stderr);
    assert.equal(q.stdout, args.map((a) => `[${a}]`).join(''));
    const gp = await home.banger(['vm', 'exec', 'wsg', '--guest-path', '/tmp', '--', 'pwd'], 300_000);
    assert.equal(gp.stdout, '/tmp\n', gp.stderr);

    // WORKSPACE column and vm show.
    const list = await home.banger(['vm', 'list']);
    assert.match(list.stdout, /WORKSPACE/);
    assert.match(list.stdout, new RegExp(`${repo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}@${hostHead.slice(0, 7)}`));
    const show = await home.banger(['vm', 'show', 'wsg', '--json']);
    const ws = (JSON.parse(show.stdout) as { workspace: { guest_path: string; host_path: string; head: string } })
      .workspace;
    assert.deepEqual([ws.guest_path, ws.host_path, ws.head], ['/root/repo', repo, hostHead]);

    // HEAD moved on the host: a warning; a dirty guest tree refuses a re-prepare; --force replaces it.
    git(repo, 'commit', '-q', '--allow-empty', '-m', 'c61');
    const moved = await exec('true');
    assert.match(moved.stderr, /was prepared at [0-9a-f]{12} \(--auto-prepare re-ships it/);
    assert.equal((await exec('sh', '-c', 'echo change >> tracked.txt')).code, 0);
    const refused = await home.banger(['vm', 'workspace', 'prepare', 'wsg', repo], 300_000);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /VM wsg has uncommitted changes at \/root\/repo\nhint: .*--force/);
    const dry = await home.banger(['vm', 'workspace', 'prepare', 'wsg', repo, '--dry-run', '--depth', '3']);
    assert.equal(dry.stdout, '.gitignore\nlog.txt\nsub/x.sh\ntracked.txt\n');
    assert.match(dry.stderr, /untracked files not included \(1 left out\); git history: 3 commits/);
    assert.equal((await exec('cat', 'tracked.txt')).stdout, 'tracked content\nchange\n', 'dry-run changed nothing');

    // --force, --from another branch, --branch, --depth, --include-untracked.
    const forced = await home.banger(
      [
        'vm',
        'workspace',
        'prepare',
        'wsg',
        repo,
        '--force',
        '--from',
        'old',
        '--branch',
        'try',
        '--depth',
        '3',
        '--include-untracked',
      ],
      300_000,
    );
    assert.equal(forced.code, 0, forced.stderr);
    const b = await exec(
      'sh',
      '-c',
      'git symbolic-ref HEAD; git log --format=%s | tr "\\n" " "; git status --porcelain',
    );
    assert.equal(b.stdout, 'refs/heads/try\nc5 c4 c3 ?? untracked.txt\n', b.stderr);

    // --auto-prepare: the guest tree is not clean (an untracked file): a warning and no re-ship.
    const auto = await home.banger(['vm', 'exec', 'wsg', '--auto-prepare', '--', 'git', 'rev-parse', 'HEAD'], 300_000);
    assert.match(auto.stderr, /has uncommitted changes: not re-shipped/);
    assert.notEqual(auto.stdout.trim(), hostHead);
    assert.equal((await exec('rm', 'untracked.txt')).code, 0);
    const auto2 = await home.banger(
      ['vm', 'exec', 'wsg', '--auto-prepare', '--', 'git', 'log', '-1', '--format=%s'],
      300_000,
    );
    assert.equal(auto2.stdout, 'c61\n', auto2.stderr);

    // A stopped VM is refused, naming the command that starts it.
    assert.equal((await home.banger(['vm', 'stop', 'wsg'], 120_000)).code, 0);
    const stopped = await exec('true');
    assert.equal(stopped.code, 125);
    assert.match(stopped.stderr, /VM wsg is stopped\nhint: .*banger vm start wsg/);
    assert.equal((await home.banger(['vm', 'delete', 'wsg'], 120_000)).code, 0);
  },
);
