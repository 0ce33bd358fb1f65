/**
 * Integration (network: user mode with restrict=on, loopback only; boots ONE VM: run under
 * `flock /work/vm.lock`): @banger/sdk against a real daemon and a real VM (a busybox-only image
 * pushed to a local registry, driven through the guest agent by the daemon's proc.* methods).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, sh, TestHome } from '../helpers/home.js';
import { runBounded } from '../helpers/run.js';
import { after, before, test } from 'node:test';
import { Banger, BangerError, BangerTimeoutError, ExecError, type Vm } from '@banger/sdk';
import { BUSYBOX, busyboxTar } from '../helpers/guest-images.js';
import { LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [...missingTools([...DEFAULT_VM_TOOLS, 'docker-registry']), ...(existsSync(BUSYBOX) ? [] : [BUSYBOX])],
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod busybox-static docker-registry',
);

const EXAMPLE = join(REPO, 'examples', 'sdk-run-repo-tests.mjs');

let home: TestHome;
let reg: LocalRegistry | undefined;

before(async () => {
  if (skip) return;
  home = new TestHome('banger-it-sdk-');
  reg = await LocalRegistry.start();
});

after(async () => {
  reg?.stop();
  if (!skip) await home.cleanup();
});

test(
  'sdk: idempotent create, exec exit 3 and check, spawn/detach/attach, per-exec timeout, concurrent execs, files — one VM',
  { skip, timeout: 15 * 60_000 },
  async () => {
    await pushImage((reg as LocalRegistry).port, 'test/busybox', 'v1', [
      { tar: await busyboxTar(), compression: 'gzip' },
    ]);
    const port = (reg as LocalRegistry).port;
    const pulled = await home.banger(['image', 'pull', `127.0.0.1:${port}/test/busybox:v1`, '--name', 'bb']);
    assert.equal(pulled.code, 0, pulled.stderr);
    // The CLI started the daemon for this home; the SDK finds it by the same paths.
    const banger = await Banger.connect({ env: home.env });
    const key = 'sdk-it-1';
    const vm = await banger.vms.create({ name: 'sdkvm', image: 'bb', idempotencyKey: key, ttl: 3600_000 });
    try {
      const again = await banger.vms.create({ name: 'sdkvm-other', image: 'bb', idempotencyKey: key });
      assert.equal(again.id, vm.id, 'a retried create with the same key returns the same VM');
      assert.deepEqual(
        (await banger.vms.list()).map((v) => v.name),
        ['sdkvm'],
      );

      const r = await vm.sh('echo out; echo err >&2; exit 3');
      assert.deepEqual(r, { exitCode: 3, signal: null, timedOut: false, stdout: 'out\n', stderr: 'err\n' });

      await assert.rejects(vm.sh('echo o2; echo e2 >&2; exit 5', { check: true }), (e: unknown) => {
        assert.ok(e instanceof ExecError, String(e));
        assert.deepEqual([e.exitCode, e.stdout, e.stderr], [5, 'o2\n', 'e2\n']);
        return true;
      });

      const h = await vm.spawn(['/bin/sh', '-c', 'echo first; sleep 2; echo second; echo late >&2']);
      h.detach();
      const back = await banger.processes.attach(h.id, { fromOffset: 0 });
      const all = await back.wait();
      assert.deepEqual([all.exitCode, all.stdout, all.stderr], [0, 'first\nsecond\n', 'late\n']);

      const t = await vm.sh('sleep 300 & sleep 300; echo never', { timeout: 2000 });
      assert.deepEqual([t.timedOut, t.signal, t.exitCode, t.stdout], [true, 9, null, '']);
      // The whole process group went: no sleep is left in the guest.
      const left = await vm.exec(['busybox', 'pidof', 'sleep']);
      assert.equal(left.exitCode, 1, `sleeps left: ${left.stdout}`);
      await assert.rejects(
        vm.sh('sleep 300', { timeout: 1000, check: true }),
        (e: unknown) => e instanceof BangerTimeoutError && e.kind === 'timeout',
      );

      const loop = (c: string): string =>
        `i=0; while [ $i -lt 200 ]; do echo ${c}$i; echo ${c}e$i >&2; i=$((i+1)); done`;
      const [a, b] = await Promise.all([vm.sh(loop('A')), vm.sh(loop('B'))]);
      const seq = (c: string): string => Array.from({ length: 200 }, (_, i) => `${c}${i}\n`).join('');
      assert.equal(a.stdout, seq('A'));
      assert.equal(a.stderr, seq('Ae'));
      assert.equal(b.stdout, seq('B'));
      assert.equal(b.stderr, seq('Be'));

      await vm.files.write('/root/note.txt', 'hello sdk\n');
      assert.equal((await vm.files.read('/root/note.txt')).data.toString(), 'hello sdk\n');
      assert.equal((await vm.sh('cat /root/note.txt')).stdout, 'hello sdk\n');
      const tList = Date.now();
      await checkList(vm);
      const tWs = Date.now();
      await checkWorkspace(vm);
      const tPty = Date.now();
      await checkPty(vm);
      console.log(`# files.list ${tWs - tList} ms, workspace ${tPty - tWs} ms, pty ${Date.now() - tPty} ms`);
    } finally {
      await vm.delete();
    }
  },
);

/** vm.files.list: lstat semantics (links listed, never followed), sorting, bounds, typed errors. */
async function checkList(vm: Vm): Promise<void> {
  const made = await vm.sh(
    'mkdir -p /root/ls/sub && printf abc > /root/ls/f && chmod 640 /root/ls/f && ln -s /etc /root/ls/link && ln -s nowhere /root/ls/dangling && mkfifo /root/ls/pipe',
  );
  assert.equal(made.exitCode, 0, made.stderr);
  const ls = await vm.files.list('/root/ls');
  assert.equal(ls.truncated, false);
  assert.deepEqual(
    ls.entries.map((e) => [e.name, e.path, e.type, e.type === 'directory' ? 0 : e.size]),
    [
      ['dangling', '/root/ls/dangling', 'symlink', 7],
      ['f', '/root/ls/f', 'file', 3],
      ['link', '/root/ls/link', 'symlink', 4],
      ['pipe', '/root/ls/pipe', 'other', 0],
      ['sub', '/root/ls/sub', 'directory', 0],
    ],
  );
  assert.equal(ls.entries[1]?.mode, 0o640);
  assert.ok(Date.now() - Date.parse(ls.entries[1]?.mtime ?? '') < 3600_000, ls.entries[1]?.mtime);
  const two = await vm.files.list('/root/ls', { maxEntries: 2 });
  assert.deepEqual([two.entries.length, two.truncated], [2, true]);
  const code = (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'resolved',
      (e: unknown) => (e instanceof BangerError ? e.code : String(e)),
    );
  assert.equal(await code(vm.files.list('/root/ls/link')), 'bad_request', 'a link to a directory is not followed');
  assert.equal(await code(vm.files.list('/root/ls/f')), 'bad_request');
  assert.equal(await code(vm.files.list('/root/nope')), 'not_found');
  assert.equal(await code(vm.files.list('/root/ls', { maxEntries: 0 })), 'bad_request');
}

/** vm.pty: raw terminal bytes both ways over the daemon's Upgrade, resize by proc.resize, exit by proc.wait. */
async function checkPty(vm: Vm): Promise<void> {
  const t = await vm.pty(
    ['/bin/sh', '-c', 'busybox stty size; read a; busybox stty size; read b; echo "got:$b"; exit 4'],
    {
      cols: 77,
      rows: 11,
    },
  );
  let text = '';
  t.stream.on('data', (d: Buffer) => (text += d.toString()));
  const until = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 500 && !re.test(text); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(text, re);
  };
  await until(/11 77\r?\n/);
  await t.resize(100, 30);
  t.stream.write('x\n');
  await until(/30 100\r?\n/);
  t.stream.write('hello\n');
  assert.deepEqual(await t.wait(), { exitCode: 4, signal: null, timedOut: false });
  await until(/got:hello\r?\n/);
}

/** vm.workspace: a host git checkout ships to /root/repo (files only: busybox has no git); export says why it cannot. */
async function checkWorkspace(vm: Vm): Promise<void> {
  const repo = mkdtempSync(join(tmpdir(), 'banger-sdk-ws-'));
  try {
    writeFileSync(join(repo, 'a.txt'), 'tracked\n');
    writeFileSync(join(repo, 'untracked.txt'), 'not shipped\n');
    const git = (...a: string[]): void => {
      const r = sh(['git', '-C', repo, '-c', 'user.email=t@t', '-c', 'user.name=t', ...a]);
      assert.equal(r.code, 0, r.stderr);
    };
    git('init', '-q');
    git('add', 'a.txt');
    git('commit', '-q', '-m', 'one');
    const ws = await vm.workspace.prepare(repo);
    assert.deepEqual([ws.guest_path, ws.git, ws.head, ws.files], ['/root/repo', false, null, 1]);
    assert.ok(
      ws.notes.some((n) => /no git/.test(n)),
      ws.notes.join('\n'),
    );
    assert.deepEqual(
      (await vm.files.list('/root/repo')).entries.map((e) => e.name),
      ['a.txt'],
    );
    assert.equal((await vm.files.read('/root/repo/a.txt')).data.toString(), 'tracked\n');
    assert.equal((await vm.refresh()).workspace !== null, true, 'vm show records the workspace');
    // A second prepare over files it did not make is refused unless forced.
    assert.equal(
      await vm.workspace.prepare(repo).then(
        () => 'resolved',
        (e: unknown) => (e instanceof BangerError ? e.code : String(e)),
      ),
      'precondition',
    );
    assert.equal((await vm.workspace.prepare(repo, { force: true })).files, 1);
    await assert.rejects(vm.workspace.export(), (e: unknown) => {
      assert.ok(e instanceof BangerError, String(e));
      assert.equal(e.code, 'precondition');
      assert.match(e.message, /has no git/);
      return true;
    });
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
}

test(
  'examples/sdk-run-repo-tests.mjs: a VM with the repo as its workspace, the tests run, a listing, the VM deleted',
  { skip, timeout: 5 * 60_000 },
  async () => {
    const repo = mkdtempSync(join(tmpdir(), 'banger-sdk-example-'));
    try {
      writeFileSync(join(repo, 'a.txt'), 'from the repo\n');
      const git = (...a: string[]): void => {
        const r = sh(['git', '-C', repo, '-c', 'user.email=t@t', '-c', 'user.name=t', ...a]);
        assert.equal(r.code, 0, r.stderr);
      };
      git('init', '-q');
      git('add', 'a.txt');
      git('commit', '-q', '-m', 'one');
      const started = Date.now();
      const r = await runBounded(
        [process.execPath, EXAMPLE, repo, 'cat a.txt && echo tests-ran', 'bb'],
        home.env,
        4 * 60_000,
      );
      console.log(`# example ${Date.now() - started} ms`);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /from the repo\ntests-ran\n/);
      assert.match(r.stdout, /tests exited with 0/);
      assert.match(r.stdout, /\/root\/repo: a\.txt\n/);
      const banger = await Banger.connect({ env: home.env });
      assert.deepEqual(await banger.vms.list(), [], 'the example deleted its VM');
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
  },
);
