#!/usr/bin/env node
// An agent's loop with @banger/sdk: create a VM with a repository in it, run its tests, look at
// what they left, read a file they wrote, bring back the changes, delete the VM. After
// `npm ci && npm run build` at banger's root:
//
//   node examples/sdk-run-repo-tests.mjs PATH/TO/REPO 'npm test' [IMAGE]
//
// The VM has a ttl, so it goes away even if this process dies before its `finally`; the
// idempotency key makes a retried run of this script reuse the VM the first one created.
import { execFileSync } from 'node:child_process';
import { Banger, BangerError } from '@banger/sdk';

const [repo = '.', testCmd = 'npm test', image] = process.argv.slice(2);
const banger = await Banger.connect({ requestTimeout: 15 * 60_000 });
const head = execFileSync('git', ['-C', repo, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
// The repository ships as `banger vm run PATH` ships it: tracked files and recent history, at
// /root/repo. If it cannot ship, create deletes the VM and throws.
const vm = await banger.vms.create({
  ...(image ? { image } : {}),
  workspace: repo,
  ttl: 60 * 60_000, // stopped and deleted after an hour whatever happens
  idleTtl: 10 * 60_000,
  rm: true,
  idempotencyKey: `tests-${head}`,
});
try {
  const cwd = '/root/repo';
  // A failing test run is a result to look at, not an exception.
  const run = await vm.sh(`(${testCmd}) > /root/test-output.txt 2>&1`, { cwd, timeout: 30 * 60_000 });
  const output = (await vm.files.read('/root/test-output.txt')).data.toString('utf8');
  console.log(output.slice(-4000));
  console.log(run.timedOut ? 'tests timed out' : `tests exited with ${run.exitCode}`);
  const top = await vm.files.list(cwd);
  console.log(`${cwd}: ${top.entries.map((e) => (e.type === 'directory' ? `${e.name}/` : e.name)).join(' ')}`);
  // What the tests changed in the tree, as a patch `git apply` takes (empty: nothing). Only where
  // the guest has git: on an image without it the files shipped without history (head is null).
  if (vm.info.workspace?.head) {
    const { patch } = await vm.workspace.export();
    console.log(`the tests changed ${patch.length} bytes of patch`);
  }
  process.exitCode = run.exitCode === 0 ? 0 : 1;
} catch (e) {
  if (e instanceof BangerError) console.error(`${e.code}: ${e.message}${e.hint ? `\n${e.hint}` : ''}`);
  throw e;
} finally {
  await vm.delete();
}
