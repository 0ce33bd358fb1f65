/**
 * Integration (network: loopback only — an HTTP server on 127.0.0.1 started
 * here): SPEC §2's CLI/daemon version swap through the real CLI and daemon in
 * an isolated home. No VM boots. "Another version" is made with the test-only
 * BANGER_TEST_VERSION (src/version.ts): a CLI run with it starts a daemon that
 * reports that version; a CLI run without it is then of another version. The
 * busy operation is a `kernel pull` whose tarball the loopback server holds
 * back (half sent) until the test releases it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sh, TEST_CONFIG, TestHome, type CliResult } from '../helpers/home.js';
import { missingTools, requirements } from '../helpers/requirements.js';
import { fakeBzImage } from '../helpers/fake-kernel.js';

const skip = requirements(missingTools(['tar', 'zstd', 'mkfs.ext4']), 'apt install tar zstd e2fsprogs');

const OLD = { BANGER_TEST_VERSION: '0.0.1+old-test' };

let home: TestHome;
let server: Server;
let port = 0;
let tarball: Buffer;
/** Responses to GET /held.tar.zst, half sent, waiting for release(). */
const held: ServerResponse[] = [];
let requested: () => void = () => undefined;

before(async () => {
  home = new TestHome('banger-ver-');
  const work = join(home.root, 'work');
  mkdirSync(join(work, 'src'), { recursive: true });
  writeFileSync(join(work, 'src', 'bzImage'), fakeBzImage('9.9.9-held'));
  const out = join(work, 'held.tar.zst');
  const r = sh(['tar', '--zstd', '-cf', out, '-C', join(work, 'src'), '.']);
  assert.equal(r.code, 0, r.stderr);
  tarball = readFileSync(out);
  server = createServer((req, res) => {
    if (req.url !== '/held.tar.zst') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': String(tarball.length) });
    res.write(tarball.subarray(0, Math.floor(tarball.length / 2)));
    held.push(res);
    requested();
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  port = (server.address() as { port: number }).port;
  const catalog = join(work, 'catalog.json');
  const sha256 = createHash('sha256').update(tarball).digest('hex');
  writeFileSync(
    catalog,
    JSON.stringify({
      kernels: [
        { name: 'held', url: `http://127.0.0.1:${port}/held.tar.zst`, sha256, distro: 'test', version: '9.9.9' },
      ],
    }),
  );
  mkdirSync(join(home.root, 'config', 'banger'), { recursive: true });
  writeFileSync(join(home.root, 'config', 'banger', 'config.toml'), `${TEST_CONFIG}catalog = "${catalog}"\n`);
});

after(async () => {
  for (const res of held) res.destroy();
  server.close();
  await home.cleanup();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function status(): Promise<{ pid: number; version: string }> {
  const r = await home.banger(['daemon', 'status']);
  assert.equal(r.code, 0, r.stderr);
  const m = /pid (\d+), version (\S+),/.exec(r.stdout);
  assert.ok(m, r.stdout);
  return { pid: Number(m[1]), version: m[2] as string };
}

/** Starts an old-version daemon (through an old-version CLI) and returns its pid. */
async function startOldDaemon(): Promise<number> {
  await home.banger(['daemon', 'stop'], 30_000);
  const r = await home.banger(['kernel', 'list', '--json'], 60_000, OLD);
  assert.equal(r.code, 0, r.stderr);
  const st = await status();
  assert.equal(st.version, OLD.BANGER_TEST_VERSION);
  return st.pid;
}

test('an idle daemon of another version is replaced and the command runs against the new one', { skip }, async () => {
  const oldPid = await startOldDaemon();
  const r = await home.banger(['kernel', 'list', '--available', '--json'], 60_000);
  assert.equal(r.code, 0, `${r.stderr}\ndaemon log tail: ${home.daemonLog().slice(-2000)}`);
  assert.ok(
    (JSON.parse(r.stdout) as { name: string }[]).some((k) => k.name === 'held'),
    'the new daemon answered the command',
  );
  const st = await status();
  assert.notEqual(st.version, OLD.BANGER_TEST_VERSION);
  assert.notEqual(st.pid, oldPid);
  assert.equal(alive(oldPid), false, 'the old daemon exited');
});

test(
  'a busy daemon of another version is not replaced: the CLI names the running operation and fails; the operation finishes',
  { skip },
  async () => {
    const oldPid = await startOldDaemon();
    const arrived = new Promise<void>((ok) => (requested = ok));
    // The busy operation: an old-version CLI pulling the held kernel.
    const pull = home.bangerBackground(['kernel', 'pull', 'held'], OLD);
    try {
      // Bounded: a pull that never reaches the server fails the test instead of hanging it.
      await Promise.race([
        arrived,
        pull.wait().then((p) => assert.fail(`the pull ended before reaching the server: ${p.stderr}`)),
      ]);

      const r: CliResult = await home.banger(['kernel', 'list', '--json'], 60_000);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr, new RegExp(`version ${OLD.BANGER_TEST_VERSION.replace(/[.+]/g, '\\$&')}`));
      assert.match(r.stderr, /busy with kernel\.pull \(op-[0-9a-f]+, \d+s\)/);
      assert.match(r.stderr, /retry when they finish/);
      assert.equal(r.stdout, '');
      const st = await status();
      assert.deepEqual(st, { pid: oldPid, version: OLD.BANGER_TEST_VERSION }, 'the busy daemon was left running');

      for (const res of held.splice(0)) res.end(tarball.subarray(Math.floor(tarball.length / 2)));
      const done = await pull.wait();
      assert.equal(done.code, 0, `the held pull was not disturbed: ${done.stderr}`);
    } finally {
      for (const res of held.splice(0)) res.destroy();
      await pull.stop();
    }
    const list = await home.banger(['kernel', 'list', '--json'], 60_000);
    assert.equal(list.code, 0, `once idle the daemon is replaced: ${list.stderr}`);
    assert.ok(
      (JSON.parse(list.stdout) as { name: string }[]).some((k) => k.name === 'held'),
      'the pulled kernel is there',
    );
    assert.notEqual((await status()).pid, oldPid);
  },
);
