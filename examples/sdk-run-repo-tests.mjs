#!/usr/bin/env node
// An agent's loop with @banger/sdk: create a VM, put a repository in it, run its tests, read a
// file the tests wrote, delete the VM. After `npm ci && npm run build` at banger's root:
//
//   node examples/sdk-run-repo-tests.mjs PATH/TO/REPO 'npm test' [IMAGE]
//
// The VM has a ttl, so it goes away even if this process dies before its `finally`; the
// idempotency key makes a retried run of this script reuse the VM the first one created.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Banger, ExecError } from '@banger/sdk';

const [repo = '.', testCmd = 'npm test', image] = process.argv.slice(2);
const banger = await Banger.connect({ requestTimeout: 15 * 60_000 });
const head = execFileSync('git', ['-C', repo, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
const vm = await banger.vms.create({
  ...(image ? { image } : {}),
  ttl: 60 * 60_000, // stopped and deleted after an hour whatever happens
  idleTtl: 10 * 60_000,
  rm: true,
  idempotencyKey: `tests-${head}`,
});
try {
  // The tracked files, one call each (small repositories; large ones: `banger vm run PATH`).
  const files = execFileSync('git', ['-C', repo, 'ls-files', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of files) {
    const dir = join('/work', f, '..');
    await vm.exec(['mkdir', '-p', dir], { check: true });
    await vm.files.write(join('/work', f), readFileSync(join(repo, f)));
  }
  // A failing test run is a result to look at, not an exception.
  const run = await vm.sh(`${testCmd} > /work/test-output.txt 2>&1`, { cwd: '/work', timeout: 30 * 60_000 });
  const output = (await vm.files.read('/work/test-output.txt')).data.toString('utf8');
  console.log(output.slice(-4000));
  console.log(run.timedOut ? 'tests timed out' : `tests exited with ${run.exitCode}`);
  process.exitCode = run.exitCode === 0 ? 0 : 1;
} catch (e) {
  if (e instanceof ExecError) console.error(`${e.message}\n${e.stderr}`);
  throw e;
} finally {
  await vm.delete();
}
