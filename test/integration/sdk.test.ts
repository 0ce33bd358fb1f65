/**
 * Integration (network: user mode with restrict=on, loopback only; boots ONE VM: run under
 * `flock /work/vm.lock`): @banger/sdk against a real daemon and a real VM (a busybox-only image
 * pushed to a local registry, driven through the guest agent by the daemon's proc.* methods).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Banger, BangerTimeoutError, ExecError } from '@banger/sdk';
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
    } finally {
      await vm.delete();
    }
  },
);
