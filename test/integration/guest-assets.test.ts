/**
 * Integration (no network, no VM): the shared rootfs pipeline, with the real
 * mkfs.ext4 and debugfs, injects the guest agent and its unit into every image
 * and creates the mount points an image lacks (images without systemd boot
 * with banger-init as PID 1, which mounts on them).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { pack } from 'tar-stream';
import { AGENT_PATH, AGENT_UNIT, AGENT_UNIT_TEXT } from '../../src/guest/assets.js';
import { nullLogger, quietContext } from '../../src/services/context.js';
import { RootfsBuilder, type LayerInput } from '../../src/services/image/pipeline.js';
import { NodeRunner } from '../../src/system/node-runner.js';
import { guestBinary } from '../../src/system/paths.js';
import { sh } from '../helpers/home.js';
import { missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [...missingTools(['mkfs.ext4', 'debugfs']), ...(existsSync(guestBinary('banger-agent')) ? [] : ['npm run build'])],
  'apt install e2fsprogs; npm run build',
);
const work = mkdtempSync(join(tmpdir(), 'banger-it-assets-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface Entry {
  name: string;
  type?: 'file' | 'symlink' | 'directory';
  linkname?: string;
  body?: string;
  mode?: number;
}

async function build(entries: Entry[]): Promise<string> {
  const p = pack();
  for (const { body, ...h } of entries) p.entry({ mode: h.type === 'directory' ? 0o755 : 0o644, ...h }, body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  const tar = Buffer.concat(chunks);
  const layer: LayerInput = { label: 'layer 1/1', open: async () => ({ stream: Readable.from([tar]) }) };
  const staging = mkdtempSync(join(work, 's-'));
  const res = await new RootfsBuilder(new NodeRunner(), nullLogger, process.getuid?.() === 0, 1 << 30).build(
    staging,
    [layer],
    {},
    quietContext(),
    new AbortController().signal,
  );
  assert.equal(
    res.hasSystemd,
    entries.some((e) => e.name.endsWith('systemd/systemd')),
  );
  return join(staging, 'rootfs.ext4');
}

/** debugfs `stat` of a path in the image: its type and mode line. */
function stat(rootfs: string, path: string): string {
  return sh(['debugfs', '-R', `stat "${path}"`, rootfs]).stdout;
}

test(
  'a busybox-like image without systemd gets the agent, its unit and the mount points it lacks',
  { skip },
  async () => {
    const rootfs = await build([
      { name: 'bin/busybox', body: '#!/bin/true\n', mode: 0o755 },
      { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
      { name: 'etc/passwd', body: 'root:x:0:0:root:/root:/bin/sh\n' },
      // A link where a mount point would go is the image's choice: left as it is.
      { name: 'run', type: 'symlink', linkname: 'var/run' },
      { name: 'var/run', type: 'directory' },
    ]);
    for (const [dir, mode] of [
      ['/proc', '0555'],
      ['/sys', '0555'],
      ['/dev', '0755'],
      ['/tmp', '1777'],
      ['/root', '0700'],
    ] as const) {
      const s = stat(rootfs, dir);
      assert.match(s, /Type: directory/, `${dir}: ${s}`);
      assert.match(s, new RegExp(`Mode:\\s+0?${mode}\\s`), `${dir}: ${s}`);
    }
    assert.match(stat(rootfs, '/run'), /Type: symlink/);

    const agent = stat(rootfs, AGENT_PATH);
    assert.match(agent, /Type: regular/);
    assert.match(agent, /Mode:\s+0755\s/);
    assert.match(agent, /User:\s+0\s/);
    const dumped = join(work, 'agent-out');
    assert.equal(sh(['debugfs', '-R', `dump "${AGENT_PATH}" "${dumped}"`, rootfs]).code, 0);
    assert.deepEqual(readFileSync(dumped), readFileSync(guestBinary('banger-agent')), 'the built agent, byte for byte');

    const unit = sh(['debugfs', '-R', `cat "/etc/systemd/system/${AGENT_UNIT}"`, rootfs]).stdout;
    assert.equal(unit, AGENT_UNIT_TEXT);
    assert.match(unit, /Restart=always/);
    assert.match(
      stat(rootfs, `/etc/systemd/system/sysinit.target.wants/${AGENT_UNIT}`),
      /Type: symlink[\s\S]*Fast link dest: "\/etc\/systemd\/system\/banger-agent.service"/,
    );
    const fsck = sh(['e2fsck', '-fn', rootfs]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  },
);

test('an image with systemd keeps its own mount points and modes', { skip }, async () => {
  const rootfs = await build([
    { name: 'usr/lib/systemd/systemd', body: '#!/bin/true\n', mode: 0o755 },
    { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
    { name: 'tmp', type: 'directory', mode: 0o1777 },
    { name: 'root', type: 'directory', mode: 0o750 },
  ]);
  assert.match(stat(rootfs, '/root'), /Mode:\s+0750\s/, 'an existing /root is not changed');
  assert.match(stat(rootfs, '/proc'), /Type: directory/);
  assert.match(stat(rootfs, AGENT_PATH), /Type: regular/);
  // No sshd in it: reached through the agent; the old first-boot sshd installer (it needed network) is gone.
  for (const p of [
    '/usr/local/libexec/banger-firstboot',
    '/etc/systemd/system/banger-firstboot.service',
    '/etc/systemd/system/multi-user.target.wants/banger-firstboot.service',
    '/etc/banger/firstboot-sshd',
  ])
    assert.match(sh(['debugfs', '-R', `stat "${p}"`, rootfs]).stderr, /File not found/, `${p} is not injected`);
});
