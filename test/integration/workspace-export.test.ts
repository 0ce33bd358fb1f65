/**
 * Integration (network: user mode with restrict=on, loopback only; boots ONE VM: run under
 * `flock /work/vm.lock`): `vm workspace export`, [[file_sync]] and the tooling-bootstrap refusal,
 * against a Debian minbase + git image (no sshd: everything goes through the guest agent) pushed to a
 * local registry. The guest repo is made in the VM (ship, then git init/commit there), so the test
 * does not depend on how much git metadata `prepare` ships.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Banger } from '@banger/sdk';
import { REPO, sh, TEST_CONFIG, TestHome } from '../helpers/home.js';
import { LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  missingTools([...DEFAULT_VM_TOOLS, 'docker-registry', 'git']),
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod docker-registry git',
);

const VM = 'wsx';
let home: TestHome;
let reg: LocalRegistry | undefined;
let dir: string;
let vmUp = false;

/** Debian bookworm minbase with git (no systemd, no sshd) as one tar, built once and cached under .test-cache/. */
function debianGitTar(): string {
  const cache = join(REPO, '.test-cache');
  const out = join(cache, 'debian-minbase-git-bookworm.tar');
  if (existsSync(out)) return out;
  mkdirSync(cache, { recursive: true });
  const r = sh([
    'mmdebstrap',
    '--mode=auto',
    '--variant=minbase',
    '--include=git',
    '--format=tar',
    'bookworm',
    `${out}.partial`,
  ]);
  assert.equal(r.code, 0, `mmdebstrap failed: ${r.stderr.slice(-2000)}`);
  renameSync(`${out}.partial`, out);
  return out;
}

function git(cwd: string, ...args: string[]): string {
  const r = sh(['git', '-C', cwd, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args]);
  assert.equal(r.code, 0, `git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** `sh -c script` in the VM, through the agent; asserts it succeeded. */
async function guest(script: string): Promise<string> {
  const r = await home.banger(['vm', 'ssh', VM, '--', 'sh', '-c', script], 120_000);
  assert.equal(r.code, 0, `${script}: ${r.stderr}`);
  return r.stdout;
}

const BIN_BEFORE = Buffer.from([0, 1, 2, 3, 255, 0, 10]);
const BIN_AFTER = Buffer.from([0, 9, 8, 7, 255, 13, 10, 0]);

/** tracked.txt and data.bin committed; ignored.txt ignored. */
function makeRepo(name: string, extra: Record<string, string> = {}): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  git(d, 'init', '-q');
  writeFileSync(join(d, 'tracked.txt'), 'line one\n');
  writeFileSync(join(d, 'data.bin'), BIN_BEFORE);
  writeFileSync(join(d, '.gitignore'), 'ignored.txt\n');
  for (const [f, content] of Object.entries(extra)) writeFileSync(join(d, f), content);
  git(d, 'add', '-A');
  git(d, 'commit', '-q', '-m', 'init');
  return d;
}

async function vmNames(): Promise<string[]> {
  const r = await home.banger(['vm', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { name: string }[]).map((v) => v.name);
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'banger-it-wsx-'));
  home = new TestHome('banger-it-wsx-');
  reg = await LocalRegistry.start();
  // [[file_sync]]: one file with its own mode, one with the default 0600 into a new directory, one missing.
  writeFileSync(join(dir, 'sync-a'), 'synced a\n');
  writeFileSync(join(dir, 'sync-b'), 'synced b\n');
  mkdirSync(join(home.root, 'config', 'banger'), { recursive: true });
  writeFileSync(
    join(home.root, 'config', 'banger', 'config.toml'),
    [
      TEST_CONFIG,
      '[[file_sync]]',
      `host = ${JSON.stringify(join(dir, 'sync-a'))}`,
      'guest = "~/.synced-a"',
      'mode = "0640"',
      '[[file_sync]]',
      `host = ${JSON.stringify(join(dir, 'sync-b'))}`,
      'guest = "/root/sub/dir/b"',
      '[[file_sync]]',
      `host = ${JSON.stringify(join(dir, 'missing'))}`,
      'guest = "~/.missing"',
      '',
    ].join('\n'),
  );
});

after(async () => {
  reg?.stop();
  if (!skip) {
    if (vmUp) await home.banger(['vm', 'delete', VM]);
    await home.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('vm run PATH of a repo with .tool-versions, without --nat: refused before any VM exists', { skip }, async () => {
  const repo = makeRepo('tools', { '.tool-versions': 'nodejs 20.0.0\n' });
  const r = await home.banger(['vm', 'run', '--rm', '--image', 'nosuch', repo, '--', 'true']);
  assert.equal(r.code, 125, r.stderr);
  assert.match(r.stderr, /pins tools for mise \(\.tool-versions\)/);
  assert.match(r.stderr, /hint: .*--nat.*--no-bootstrap/);
  assert.deepEqual(await vmNames(), []);
  assert.deepEqual(home.qemuPids(), []);
});

test(
  'one VM: file_sync at create (modes, default 0600, missing path warned); export → git apply (new + binary files); --base-commit → git am; dirty tree refused',
  { skip, timeout: 20 * 60_000 },
  async (t) => {
    await home.banger(['image', 'delete', 'dg']); // a kept home (BANGER_TEST_HOME) may have it
    await pushImage((reg as LocalRegistry).port, 'test/debian-git', 'v1', [
      { tar: readFileSync(debianGitTar()), compression: 'gzip' },
    ]);
    const p = await home.banger([
      'image',
      'pull',
      `127.0.0.1:${(reg as LocalRegistry).port}/test/debian-git:v1`,
      '--name',
      'dg',
    ]);
    assert.equal(p.code, 0, p.stderr);
    await home.banger(['vm', 'delete', VM]);
    const t0 = Date.now();
    const c = await home.banger(['vm', 'create', '--name', VM, '--image', 'dg'], 600_000);
    vmUp = c.code === 0;
    assert.equal(c.code, 0, c.stderr);
    t.diagnostic(`create ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // file_sync: each file with its mode (0640 given, 0600 by default), root-owned; the missing path is a warning.
    assert.match(c.stderr, /warning: file_sync\[2\] .*missing does not exist; skipped/);
    assert.equal(
      await guest('stat -c "%a %u %n" /root/.synced-a /root/sub/dir/b && cat /root/.synced-a /root/sub/dir/b'),
      '640 0 /root/.synced-a\n600 0 /root/sub/dir/b\nsynced a\nsynced b\n',
    );

    // A workspace whose repo is made in the guest (a commit of what shipped).
    const repo = makeRepo('ws');
    const ship = await home.banger(['vm', 'workspace', 'prepare', VM, repo, '--force'], 300_000);
    assert.equal(ship.code, 0, ship.stderr);
    const gitG = 'git -c user.name=g -c user.email=g@example.invalid';
    await guest(`cd /root/repo && git init -q && git add -A && ${gitG} commit -q --allow-empty -m base`);
    const base = (await guest('git -C /root/repo rev-parse HEAD')).trim();

    // Working-tree changes: a modified text file, a changed binary, a new file; an ignored file stays out.
    await guest(
      `cd /root/repo && echo 'line two' >> tracked.txt && printf '\\000\\011\\010\\007\\377\\015\\012\\000' > data.bin && echo fresh > new.txt && echo secret > ignored.txt`,
    );
    const statusBefore = await guest('cd /root/repo && git status --porcelain');
    const patchFile = join(dir, 'work.patch');
    const e = await home.banger(['vm', 'workspace', 'export', VM, '-o', patchFile]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stderr, /written to .*work\.patch \(apply with git apply\)/);
    const patch = readFileSync(patchFile, 'utf8');
    assert.ok(!patch.includes('secret'), 'ignored files stay out');
    assert.equal(
      await guest('cd /root/repo && git status --porcelain'),
      statusBefore,
      "the guest's index is untouched",
    );
    const onStdout = await home.banger(['vm', 'workspace', 'export', VM]);
    assert.equal(onStdout.code, 0, onStdout.stderr);
    assert.equal(onStdout.stdout, patch, 'stdout and -o carry the same patch');
    // @banger/sdk's vm.workspace.export() on the same VM: the same patch, and it applies.
    const tSdk = Date.now();
    const sdkVm = await (await Banger.connect({ env: home.env })).vms.get(VM);
    const viaSdk = await sdkVm.workspace.export();
    assert.equal(viaSdk.patch.toString('utf8'), patch, 'the SDK exports what the CLI does');
    assert.match(patch, /\+line two/);
    t.diagnostic(`sdk export ${Date.now() - tSdk} ms`);
    git(repo, 'apply', '--index', patchFile);
    assert.equal(readFileSync(join(repo, 'tracked.txt'), 'utf8'), 'line one\nline two\n');
    assert.ok(readFileSync(join(repo, 'data.bin')).equals(BIN_AFTER), 'the binary change applied');
    assert.equal(readFileSync(join(repo, 'new.txt'), 'utf8'), 'fresh\n');
    git(repo, 'reset', '-q', '--hard');
    git(repo, 'clean', '-qfd');

    // --base-commit on a dirty tree: refused with a hint, no file written.
    const dirty = await home.banger([
      'vm',
      'workspace',
      'export',
      VM,
      '--base-commit',
      base,
      '-o',
      join(dir, 'x.patch'),
    ]);
    assert.equal(dirty.code, 1, dirty.stderr);
    assert.match(dirty.stderr, /has uncommitted changes: --base-commit exports commits only/);
    assert.match(dirty.stderr, /hint: commit them in the guest first/);
    assert.ok(!existsSync(join(dir, 'x.patch')));

    // The guest's new commits as format-patch output, applied with git am.
    await guest(`cd /root/repo && rm ignored.txt && git add -A && ${gitG} commit -q -m 'guest work'`);
    const fp = await home.banger(['vm', 'workspace', 'export', VM, '--base-commit', base]);
    assert.equal(fp.code, 0, fp.stderr);
    assert.match(fp.stdout, /Subject: \[PATCH\] guest work/);
    const mbox = join(dir, 'commits.patch');
    writeFileSync(mbox, fp.stdout);
    git(repo, 'am', '-q', mbox);
    assert.equal(git(repo, 'log', '-1', '--format=%s %an').trim(), 'guest work g');
    assert.equal(readFileSync(join(repo, 'new.txt'), 'utf8'), 'fresh\n');
    assert.ok(readFileSync(join(repo, 'data.bin')).equals(BIN_AFTER));

    // Not a repository: named, with the hint to prepare one.
    const none = await home.banger(['vm', 'workspace', 'export', VM, '--guest-path', '/tmp']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /wsx:\/tmp is not a git repository/);
    assert.match(none.stderr, /hint: ship one first: banger vm workspace prepare wsx PATH/);

    const del = await home.banger(['vm', 'delete', VM]);
    assert.equal(del.code, 0, del.stderr);
    vmUp = false;
  },
);
