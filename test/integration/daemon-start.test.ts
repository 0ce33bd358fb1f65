/**
 * Integration (network: none — no test here opens a network connection; the
 * daemon only listens on its Unix socket): how bangerd starts and fails to
 * start, through the real CLI and daemon. Boots no VM and pulls nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { REPO, TestHome } from '../helpers/home.js';
import { runBounded } from '../helpers/run.js';

const BANGERD = join(REPO, 'bin', 'bangerd.js');
/** Well under the CLI's 20 s start timeout: a failure to start must be reported before it. */
const FAST_MS = 12_000;
/** The CLI's START_TIMEOUT_MS (src/cli/client.ts). */
const START_TIMEOUT_MS = 20_000;

const homes: TestHome[] = [];
function newHome(): TestHome {
  const h = new TestHome('banger-dstart-');
  homes.push(h);
  return h;
}
afterEach(async () => {
  for (const h of homes.splice(0)) await h.cleanup();
});
after(async () => {
  for (const h of homes.splice(0)) await h.cleanup();
});

function writeConfig(home: TestHome, text: string): string {
  const dir = join(home.root, 'config', 'banger');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.toml'), text);
  return join(dir, 'config.toml');
}

const socketOf = (home: TestHome): string => join(home.runtimeDir, 'bangerd.sock');

test('bangerd --version and --help print and exit 0; an unknown flag is an error; none starts a daemon', async () => {
  const home = newHome();
  const version = await runBounded([process.execPath, BANGERD, '--version'], home.env, FAST_MS);
  assert.equal(version.timedOut, false, 'bangerd --version must not run a daemon');
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^bangerd \d+\.\d+\.\d+\S*\n$/);
  const help = await runBounded([process.execPath, BANGERD, '--help'], home.env, FAST_MS);
  assert.equal(help.timedOut, false, 'bangerd --help must not run a daemon');
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /usage: bangerd/);
  const bad = await runBounded([process.execPath, BANGERD, '--frobnicate'], home.env, FAST_MS);
  assert.equal(bad.timedOut, false, 'an unknown flag must not run a daemon');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /unknown option "--frobnicate"/);
  assert.equal(existsSync(socketOf(home)), false, 'no daemon socket');
});

for (const c of [
  { what: 'an unknown key', text: 'log_levle = "debug"\n', names: /unknown key "log_levle"/ },
  { what: 'a value of the wrong type', text: '[vm_defaults]\nvcpu = "two"\n', names: /vm_defaults\.vcpu.*"two"/ },
  {
    what: 'memory above host RAM',
    text: '[vm_defaults]\nmemory_mib = 1e12\n',
    names: /vm_defaults\.memory_mib.*1000000000000.*at most \d+ MiB/,
  },
]) {
  test(`a config.toml with ${c.what} is named at once by the CLI, and no daemon starts`, async () => {
    const home = newHome();
    const file = writeConfig(home, c.text);
    const r = await runBounded([process.execPath, join(REPO, 'bin', 'banger.js'), 'vm', 'list'], home.env, FAST_MS);
    assert.equal(r.timedOut, false, `the CLI waited for a daemon that cannot start: ${r.stderr}`);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, c.names);
    assert.ok(r.stderr.includes(file), 'the error names the file');
    assert.doesNotMatch(r.stderr, /did not start/);
    assert.equal(existsSync(socketOf(home)), false, 'no daemon socket');
    // Commands that need no daemon still work.
    assert.equal((await home.banger(['version'], FAST_MS)).code, 0);
  });
}

test('a daemon that dies while starting is reported with its own error, not after the start timeout', async () => {
  const home = newHome();
  // A state database that is not SQLite: the daemon fails to open its store.
  mkdirSync(home.stateDir, { recursive: true });
  writeFileSync(
    join(home.stateDir, 'banger.db'),
    'this is not a database, just text that is long enough to have a header........\n'.repeat(20),
  );
  // Bounded past the CLI's start timeout: the message, not the clock, tells a death noticed from a
  // timeout (a loaded machine once took over 12 s here and left nothing to read).
  const r = await runBounded(
    [process.execPath, join(REPO, 'bin', 'banger.js'), 'vm', 'list'],
    home.env,
    START_TIMEOUT_MS + 20_000,
  );
  assert.equal(r.timedOut, false, `the CLI hung: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /did not start within/, 'the CLI waited out its timeout for a daemon that had died');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /bangerd exited while starting: .*not a database/);
  assert.ok(r.stderr.includes(join(home.stateDir, 'bangerd.log')), 'points at the daemon log');
  rmSync(join(home.stateDir, 'banger.db'), { force: true });
});

test('the daemon runs doctor after it starts and logs its rows', async () => {
  const home = newHome();
  const r = await home.banger(['vm', 'list', '--json'], 60_000);
  assert.equal(r.code, 0, r.stderr);
  // The checks run in the background a moment after start: poll the log, bounded.
  let log = '';
  for (let i = 0; i < 200 && !/doctor finished/.test(log); i++) {
    await new Promise((res) => setTimeout(res, 100));
    log = home.daemonLog();
  }
  assert.match(log, /INFO doctor \{"check":"architecture","status":"PASS"/);
  assert.match(log, /doctor \{"check":"qemu","status":"(PASS|FAIL)"/);
  assert.match(log, /INFO doctor finished \{"pass":\d+,"warn":\d+,"fail":\d+\}/);
  const st = await home.banger(['daemon', 'status', '--json'], 30_000);
  assert.equal(st.code, 0, st.stderr);
  assert.equal(
    typeof (JSON.parse(st.stdout) as { pid?: unknown }).pid,
    'number',
    'the daemon is still up after doctor',
  );
});
