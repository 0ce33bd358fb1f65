/**
 * Integration (no network, no VM boots): the key structure of what the CLI
 * prints with --json — `daemon status`, `image show`, `kernel show`,
 * `vm list`, `vm show`, `doctor` — pinned in test/snapshots/cli-json.json.
 * Only key names, nesting and value types are compared (ids, times and sizes
 * vary), so a renamed, dropped or added key, or a changed type, fails here.
 * The real CLI and daemon import a kernel, register an image and create a
 * VM's disks without starting it.
 *
 * After an intended change of the JSON output, rewrite the snapshot with
 * BANGER_UPDATE_SNAPSHOTS=1 and review its diff.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { REPO, sh, TestHome } from '../helpers/home.js';
import { fakeBzImage } from '../helpers/fake-kernel.js';
import { shapeMismatches, shapeOf, type Shape } from '../helpers/json-shape.js';
import { missingTools, requirements } from '../helpers/requirements.js';

const SNAPSHOT = join(REPO, 'test', 'snapshots', 'cli-json.json');
const skip = requirements(
  missingTools(['mkfs.ext4', 'debugfs', 'e2fsck', 'resize2fs', 'qemu-img', 'ssh-keygen']),
  'apt install e2fsprogs qemu-utils openssh-client',
);

let home: TestHome;
const actual: Record<string, unknown> = {};

function ok(r: { code: number; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

before(async () => {
  if (skip) return;
  home = new TestHome('banger-json-');
  const work = join(home.root, 'work');
  mkdirSync(join(work, 'tree', 'root'), { recursive: true });
  mkdirSync(join(work, 'tree', 'etc'), { recursive: true });
  writeFileSync(join(work, 'tree', 'etc', 'os-release'), 'ID=debian\n');
  writeFileSync(join(work, 'vmlinuz'), fakeBzImage('9.9.9-shape'));
  const rootfs = join(work, 'rootfs.ext4');
  ok(sh(['mkfs.ext4', '-q', '-F', '-d', join(work, 'tree'), rootfs, '64M']), 'mkfs rootfs');

  actual['daemon status (not running)'] = JSON.parse(ok(await home.banger(['daemon', 'status', '--json']), 'status'));
  ok(await home.banger(['kernel', 'import', 'shape-k', '--kernel', join(work, 'vmlinuz')]), 'kernel import');
  ok(await home.banger(['image', 'register', 'shape-img', '--rootfs', rootfs, '--kernel-ref', 'shape-k']), 'register');
  ok(
    await home.banger([
      'vm',
      'create',
      '--name',
      'shape-vm',
      '--image',
      'shape-img',
      '--disk-size',
      '128M',
      '--no-start',
    ]),
    'vm create',
  );
  const json = async (args: string[], codes = [0]): Promise<unknown> => {
    const r = await home.banger([...args, '--json']);
    assert.ok(codes.includes(r.code), `banger ${args.join(' ')} --json: exit ${r.code}\n${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  actual['daemon status'] = await json(['daemon', 'status']);
  actual['image show'] = await json(['image', 'show', 'shape-img']);
  actual['kernel show'] = await json(['kernel', 'show', 'shape-k']);
  actual['vm list'] = await json(['vm', 'list']);
  actual['vm show'] = await json(['vm', 'show', 'shape-vm']);
  // Exit 1 when a check fails on this host; the JSON is printed either way.
  actual['doctor'] = await json(['doctor'], [0, 1]);
  if (process.env.BANGER_UPDATE_SNAPSHOTS === '1') {
    const shapes = Object.fromEntries(Object.entries(actual).map(([k, v]) => [k, shapeOf(v)]));
    writeFileSync(SNAPSHOT, `${JSON.stringify(shapes, null, 2)}\n`);
  }
});

after(async () => {
  if (!skip) await home.cleanup();
});

const snapshot = JSON.parse(readFileSync(SNAPSHOT, 'utf8')) as Record<string, Shape>;

for (const [command, shape] of Object.entries(snapshot)) {
  test(`banger ${command} --json keeps its keys and value types`, { skip }, () => {
    assert.ok(command in actual, `no output recorded for ${command}`);
    const diff = shapeMismatches(actual[command], shape);
    assert.deepEqual(
      diff,
      [],
      `the JSON of \`banger ${command} --json\` changed shape:\n${diff.join('\n')}\nnow:\n${JSON.stringify(shapeOf(actual[command]), null, 2)}`,
    );
  });
}
