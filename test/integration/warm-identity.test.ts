/**
 * Integration (one VM under qemu, user-mode network with restrict=on, loopback only): a template
 * boot (config test_template_boot: banger.template=1) and the identity a restored guest takes
 * (issue 17, docs/warm-start.md). The VM is cold-booted as a template would be: the agent answers
 * while sshd, its host key and sysinit.target wait at the gate and the machine-id is transient;
 * then refreshIdentity applies hostname, machine-id, MAC/IP, clock and entropy and opens the gate.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname } from 'node:path';
import { text } from 'node:stream/consumers';
import { after, before, test } from 'node:test';
import { AgentClient } from '../../src/agent/client.js';
import { freshIdentity, refreshIdentity } from '../../src/services/vm/identity.js';
import { Paths } from '../../src/system/paths.js';
import { TEST_CONFIG, TestHome } from '../helpers/home.js';
import { DEFAULT_VM_TOOLS, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  missingTools(DEFAULT_VM_TOOLS),
  'apt install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client apt dpkg kmod',
);
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
let home: TestHome;

before(() => {
  if (skip) return;
  home = new TestHome('banger-it-warmid-');
  const config = new Paths(home.env, process.getuid?.() ?? 0).configFile;
  mkdirSync(dirname(config), { recursive: true });
  writeFileSync(config, `${TEST_CONFIG}test_template_boot = true\n`);
});

after(async () => {
  if (!skip) await home.cleanup();
});

async function connectAgent(id: string): Promise<AgentClient> {
  const sock = new Paths(home.env, process.getuid?.() ?? 0).agentSocket(id);
  assert.ok(existsSync(sock), `no agent socket ${sock}`);
  const stream = createConnection(sock);
  await new Promise<void>((resolve, reject) => {
    stream.once('connect', resolve);
    stream.once('error', reject);
  });
  return AgentClient.connect(stream, { timeoutMs: 60_000, label: `the agent of VM ${id}` });
}

async function sh(client: AgentClient, script: string): Promise<string> {
  const r = client.exec({ argv: ['sh', '-c', script], env: ENV });
  const [out, err, status] = await Promise.all([text(r.stdout), text(r.stderr), r.exit]);
  assert.deepEqual(status, { kind: 'exited', code: 0 }, `${script}: ${err}`);
  return out.trim();
}

test(
  'a template boot waits at the gate with the agent up; refreshIdentity gives it its own identity and opens the gate to sshd',
  { skip },
  async () => {
    const create = await home.banger(['vm', 'create', '--name', 'tpl']);
    assert.equal(create.code, 0, create.stderr);
    const shown = await home.banger(['vm', 'show', 'tpl', '--json']);
    const id = (JSON.parse(shown.stdout) as { id: string }).id;
    const client = await connectAgent(id);
    try {
      // At the gate: the agent answers, sshd and its host key wait, the machine-id is only mounted from /run.
      assert.equal(await sh(client, 'systemctl is-active banger-gate.service || true'), 'activating');
      assert.equal(await sh(client, 'systemctl is-active ssh.service || true'), 'inactive');
      assert.equal(await sh(client, 'ls /etc/ssh/ssh_host_ed25519_key 2>/dev/null || echo none'), 'none');
      assert.equal(await sh(client, "grep -c ' /etc/machine-id ' /proc/self/mountinfo || true"), '1');
      assert.equal(await sh(client, 'hostname'), 'tpl');
      const templateId = await sh(client, 'cat /etc/machine-id');
      assert.match(templateId, /^[0-9a-f]{32}$/);
      const iface = await sh(client, "ip -o -4 route show default | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'");
      const ip = await sh(
        client,
        `ip -o -4 addr show dev ${iface} scope global | sed -n 's/.* inet \\([^ ]*\\) .*/\\1/p'`,
      );
      const gateway = await sh(client, "ip -o -4 route show default | sed -n 's/^default via \\([^ ]*\\).*/\\1/p'");

      const fresh = freshIdentity('vm-restored', { ip, gateway, dns: undefined, mac: '52:54:00:ab:cd:ef' });
      await refreshIdentity(client, { ...fresh, openGate: true, reseed: true });

      assert.equal(await sh(client, 'hostname; cat /etc/hostname'), 'vm-restored\nvm-restored');
      assert.equal(await sh(client, 'cat /etc/machine-id'), fresh.machineId);
      assert.notEqual(fresh.machineId, templateId);
      assert.equal(await sh(client, "grep -c ' /etc/machine-id ' /proc/self/mountinfo || true"), '0');
      assert.equal(await sh(client, `cat /sys/class/net/${iface}/address`), '52:54:00:ab:cd:ef');
      assert.equal(await sh(client, `ip -o -4 addr show dev ${iface} scope global | grep -c ' ${ip} '`), '1');
      const skew = Number(await sh(client, 'date +%s')) - Math.floor(Date.now() / 1000);
      assert.ok(Math.abs(skew) < 60, `guest clock is ${skew} s off`);
      // The gate is open: a host key made now, sshd listening (bounded wait: the rest of the boot runs now).
      assert.equal(await sh(client, 'cat /run/banger/gate-open && echo open'), 'open');
      let ports = await client.ports();
      for (let i = 0; i < 90 && !ports.ports.some((p) => p.port === 22); i++) {
        await new Promise((r) => setTimeout(r, 1000));
        ports = await client.ports();
      }
      assert.ok(
        ports.ports.some((p) => p.port === 22),
        'sshd listens after the gate opened',
      );
      assert.match(await sh(client, 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub'), /ED25519/);
      assert.equal(await sh(client, 'systemctl is-active systemd-journald.service'), 'active');
    } finally {
      client.close();
    }
    const d = await home.banger(['vm', 'delete', 'tpl']);
    assert.equal(d.code, 0, d.stderr);
  },
);
