import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeRunner } from '../../system/node-runner.js';
import { resolveHistory, streamPack } from '../../workspace/githost.js';
import { packFiles } from '../../workspace/pack.js';
import { preflight } from '../../workspace/preflight.js';
import { finishArgv, parseProbe, probeArgv, receivePackArgv } from './workspace-guest.js';

/*
 * The guest scripts run here, with the host's sh and git standing in for the
 * guest's: the shipped checkout at <tmp>/guest/repo is what /root/repo gets.
 */

const runner = new NodeRunner();

function tmp(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'banger-wsg-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function sh(home: string, argv: string[], stdin?: AsyncIterable<Uint8Array>): Promise<string> {
  const env = { HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_DIR: undefined, GIT_WORK_TREE: undefined };
  const r = await runner.run(argv, { env, ...(stdin ? { stdin } : {}) });
  assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function hostRepo(t: TestContext, home: string): Promise<string> {
  const d = join(tmp(t), 'src');
  mkdirSync(d);
  const git = (...a: string[]): Promise<string> => sh(home, ['git', '-C', d, ...a]);
  await git('init', '-q', '-b', 'main');
  await git('config', 'user.name', 'Repo Person');
  await git('config', 'user.email', 'repo@example.invalid');
  await git('config', 'core.hooksPath', '/host/hooks');
  await git('config', 'credential.helper', 'store');
  await git('config', 'http.extraHeader', 'Authorization: Bearer SECRET');
  await git('remote', 'add', 'origin', 'https://user:TOKEN@example.invalid/r.git');
  for (let i = 1; i <= 6; i++) {
    writeFileSync(join(d, `f${i}.txt`), `${i}\n`);
    await git('add', '-A');
    await git('commit', '-q', '-m', `c${i}`);
  }
  await git('branch', 'old', 'HEAD~2');
  writeFileSync(join(d, 'new.txt'), 'untracked\n');
  return d;
}

async function ship(home: string, src: string, dir: string, o: { from?: string; branch?: string; depth: number }) {
  const plan = await preflight(runner, src, { includeUntracked: true });
  const h = await resolveHistory(runner, plan.root, plan.head, o);
  const pack = streamPack(runner, plan.root, h);
  await sh(home, receivePackArgv(dir), pack.stdout);
  assert.equal((await pack.done).code, 0);
  const extra = [{ name: '.git/config', content: h.config }];
  if (h.shallow.length) extra.push({ name: '.git/shallow', content: h.shallow.map((c) => `${c}\n`).join('') });
  const tar = packFiles(plan.root, h.checkout ? plan.untracked : plan.files, extra);
  await sh(
    home,
    finishArgv({
      dir,
      commit: h.commit,
      branch: h.branch,
      checkout: h.checkout,
      identity: { name: 'Host Global', email: 'g@example.invalid' },
    }),
    tar.bytes,
  );
  return h;
}

test('a shipped checkout: shallow log, clean status but for untracked files, filtered config, identity', async (t) => {
  const home = tmp(t);
  const src = await hostRepo(t, home);
  const dir = join(tmp(t), 'repo');
  const h = await ship(home, src, dir, { depth: 3 });
  const g = (...a: string[]): Promise<string> => sh(home, ['git', '-C', dir, ...a]);
  assert.equal(h.branch, 'main');
  assert.equal((await g('log', '--format=%s')).trim(), 'c6\nc5\nc4');
  assert.equal((await g('rev-parse', '--is-shallow-repository')).trim(), 'true');
  assert.equal(await g('status', '--porcelain'), '?? new.txt\n');
  assert.equal((await g('symbolic-ref', 'HEAD')).trim(), 'refs/heads/main');
  const cfg = await g('config', '--local', '--list');
  assert.match(cfg, /user.name=Repo Person/);
  assert.doesNotMatch(cfg, /hookspath|credential|extraheader|remote|TOKEN|SECRET/i);
  assert.equal((await g('config', '--global', 'user.name')).trim(), 'Host Global');
  assert.equal((await g('config', 'user.name')).trim(), 'Repo Person');
  await sh(home, ['git', '-C', dir, 'fsck', '--no-progress']);
  assert.equal(parseProbe(await sh(home, probeArgv(dir)))?.target, 'dirty');
  await g('clean', '-fq');
  const clean = parseProbe(await sh(home, probeArgv(dir)));
  assert.equal(clean?.target, 'clean');
  assert.equal(clean?.head, h.commit);
});

test('--from another branch checks its tree out; --branch names the guest branch', async (t) => {
  const home = tmp(t);
  const src = await hostRepo(t, home);
  const dir = join(tmp(t), 'repo');
  const h = await ship(home, src, dir, { from: 'old', branch: 'try', depth: 50 });
  const g = (...a: string[]): Promise<string> => sh(home, ['git', '-C', dir, ...a]);
  assert.equal(h.checkout, true);
  assert.equal((await g('log', '--format=%s')).trim(), 'c4\nc3\nc2\nc1');
  assert.equal((await g('symbolic-ref', 'HEAD')).trim(), 'refs/heads/try');
  assert.equal(await g('status', '--porcelain'), '?? new.txt\n');
  assert.equal(await g('ls-files'), 'f1.txt\nf2.txt\nf3.txt\nf4.txt\n');
});

test('parseProbe', () => {
  assert.deepEqual(parseProbe('nogit\nempty\n'), { git: false, target: 'empty' });
  assert.deepEqual(parseProbe('git\nclean\n' + 'a'.repeat(40) + '\n'), {
    git: true,
    target: 'clean',
    head: 'a'.repeat(40),
  });
  assert.equal(parseProbe('git\nweird\n'), undefined);
  assert.equal(parseProbe(''), undefined);
});
