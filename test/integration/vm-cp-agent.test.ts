/**
 * Integration (network: user mode with restrict=on, loopback only; boots a VM: run under
 * `flock /work/vm.lock`): `vm cp` through the guest agent (vm.file_put / vm.file_get) for an
 * image without sshd — a busybox-only image pushed to a local registry.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BUSYBOX, busyboxTar } from '../helpers/guest-images.js';
import { TestHome } from '../helpers/home.js';
import { LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [...missingTools([...DEFAULT_VM_TOOLS, 'docker-registry']), ...(existsSync(BUSYBOX) ? [] : [BUSYBOX])],
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod busybox-static docker-registry',
);

let home: TestHome;
let reg: LocalRegistry | undefined;
let work: string;

before(async () => {
  if (skip) return;
  home = new TestHome('banger-it-cp-');
  reg = await LocalRegistry.start();
  work = mkdtempSync(join(tmpdir(), 'banger-it-cp-files-'));
});

after(async () => {
  reg?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  if (!skip) await home.cleanup();
});

test(
  'busybox-only image: vm cp puts a 3 MiB file (mode 0750) into a guest directory and gets it back byte for byte through the agent; a missing guest file is a clear error',
  { skip, timeout: 15 * 60_000 },
  async () => {
    await home.banger(['image', 'delete', 'bb']);
    await pushImage((reg as LocalRegistry).port, 'test/busybox', 'v1', [
      { tar: await busyboxTar(), compression: 'gzip' },
    ]);
    const pulled = await home.banger([
      'image',
      'pull',
      `127.0.0.1:${(reg as LocalRegistry).port}/test/busybox:v1`,
      '--name',
      'bb',
    ]);
    assert.equal(pulled.code, 0, pulled.stderr);
    await home.banger(['vm', 'delete', 'cpx']);
    const c = await home.banger(['vm', 'create', '--name', 'cpx', '--image', 'bb'], 600_000);
    assert.equal(c.code, 0, c.stderr);
    try {
      const data = randomBytes(3 << 20);
      const src = join(work, 'blob');
      writeFileSync(src, data);
      chmodSync(src, 0o750);
      const put = await home.banger(['vm', 'cp', src, 'cpx:/root'], 300_000);
      assert.equal(put.code, 0, put.stderr);
      const seen = await home.banger(['vm', 'ssh', 'cpx', '--', 'busybox', 'stat', '-c', '%a %u %g %s', '/root/blob']);
      assert.equal(seen.stdout, `750 0 0 ${data.length}\n`, seen.stderr);

      const back = join(work, 'back');
      mkdirSync(back);
      const get = await home.banger(['vm', 'cp', 'cpx:/root/blob', back], 300_000);
      assert.equal(get.code, 0, get.stderr);
      const got = join(back, 'blob');
      assert.ok(readFileSync(got).equals(data), 'the bytes came back unchanged');
      assert.equal(statSync(got).mode & 0o7777, 0o750);

      const missing = await home.banger(['vm', 'cp', 'cpx:/root/nope', join(work, 'nope')]);
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /VM "cpx".*\/root\/nope.*No such file or directory/);
      assert.equal(existsSync(join(work, 'nope')), false);

      const dir = await home.banger(['vm', 'cp', back, 'cpx:/root']);
      assert.notEqual(dir.code, 0);
      assert.match(dir.stderr, /is a directory/);
      assert.match(dir.stderr, /sshd/);
    } finally {
      const d = await home.banger(['vm', 'delete', 'cpx']);
      assert.equal(d.code, 0, d.stderr);
    }
  },
);
