/**
 * Integration (network mode: bridge, inside a network namespace this file
 * creates and deletes; the image pull and the kernel pull run before, in user
 * mode, against a loopback registry and the kernel source): a bridge-mode
 * daemon, its CLI, qemu and the guests all run inside the namespace
 * (`ip netns exec`), so the bridge, the taps, the NAT rules and the guest
 * addresses never exist in the host's namespace. Guests are busybox-only
 * images (banger-init as PID 1, the agent; no sshd): cheap under TCG.
 * Traffic: DNS queries to the daemon on the namespace's 127.0.0.1 only, and
 * HTTP to a published port on the namespace's 127.0.0.1 (relayed by the
 * daemon to the guest on the namespace's bridge).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, test } from 'node:test';
import { NodeRunner } from '../../src/system/node-runner.js';
import { Paths } from '../../src/system/paths.js';
import { BANGER, TEST_CONFIG, TestHome, type CliResult } from '../helpers/home.js';
import { BUSYBOX, busyboxTar } from '../helpers/guest-images.js';
import { debianBaseTar, LocalRegistry, pushImage } from '../helpers/oci-push.js';
import { DEFAULT_VM_TOOLS, missingRoot, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [
    ...missingRoot('to create a network namespace'),
    ...missingTools([...DEFAULT_VM_TOOLS, 'ip', 'iptables', 'sysctl', 'dig', 'docker-registry']),
    ...(existsSync(BUSYBOX) ? [] : [BUSYBOX]),
  ],
  'run as root; apt install qemu-system-x86 qemu-utils iproute2 iptables procps dnsutils docker-registry busybox-static',
);

/** The package set of image-pull.test.ts and fault.test.ts, so all share one cached base tree (systemd, sshd). */
const BASE_PACKAGES = ['systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'openssh-server', 'iproute2', 'sudo'];

const NS = `banger-br-${randomBytes(4).toString('hex')}`;
const DNS_PORT = randomInt(20_000, 60_000);
const host = new NodeRunner();
let home: TestHome;
let nsMade = false;

/** Runs argv inside the test's namespace with this home's environment; a run past timeoutMs is killed. */
async function inNs(argv: readonly string[], timeoutMs = 30_000): Promise<CliResult> {
  return host
    .run(['ip', 'netns', 'exec', NS, ...argv], { env: home.env, timeoutMs })
    .catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e) }));
}

/** The banger CLI inside the namespace (it starts its daemon there). */
const bangerNs = (args: readonly string[], timeoutMs = 5 * 60_000): Promise<CliResult> =>
  inNs([process.execPath, BANGER, ...args], timeoutMs);

async function ok(args: readonly string[]): Promise<string> {
  const r = await bangerNs(args);
  assert.equal(r.code, 0, `banger ${args.join(' ')}: ${r.stderr}\n${home.daemonLog().slice(-3000)}`);
  return r.stdout;
}

/** `dig @127.0.0.1 -p PORT name` inside the namespace: the status and the A records. */
async function dig(name: string): Promise<{ status: string; answers: string[] }> {
  const r = await inNs(['dig', '@127.0.0.1', '-p', String(DNS_PORT), '+tries=1', '+time=3', name, 'A']);
  assert.equal(r.code, 0, `dig ${name}: ${r.stdout}${r.stderr}`);
  const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? '?';
  const answers = r.stdout
    .split('\n')
    .filter((l) => !l.startsWith(';') && /\sIN\s+A\s/.test(l))
    .map((l) => l.trim().split(/\s+/).at(-1) ?? '');
  return { status, answers };
}

/** Taps and NAT POSTROUTING rules in the namespace. */
async function nsNet(): Promise<{ taps: string[]; rules: string[] }> {
  const links = JSON.parse((await inNs(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[];
  const rules = (await inNs(['iptables', '-t', 'nat', '-S', 'POSTROUTING'])).stdout
    .split('\n')
    .filter((l) => l.startsWith('-A'));
  return { taps: links.map((l) => l.ifname).filter((n) => n.startsWith('tap-')), rules };
}

const natRulesFor = (rules: string[], ip: string): number => rules.filter((r) => r.includes(`-s ${ip}/32`)).length;

async function show(name: string): Promise<{ id: string; ip: string | null; ssh: string | null; state: string }> {
  return JSON.parse(await ok(['vm', 'show', name, '--json'])) as {
    id: string;
    ip: string | null;
    ssh: string | null;
    state: string;
  };
}

before(async () => {
  if (skip) return;
  home = new TestHome('banger-it-bridge-');
  // Outside the namespace (it has no uplink), in user mode: the image and its kernel.
  const reg = await LocalRegistry.start();
  try {
    await pushImage(reg.port, 'test/busybox', 'v1', [{ tar: await busyboxTar(), compression: 'gzip' }]);
    const pull = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/busybox:v1`, '--name', 'bb']);
    assert.equal(pull.code, 0, pull.stderr);
    await pushImage(reg.port, 'test/deb', 'v1', [
      { tar: readFileSync(debianBaseTar(BASE_PACKAGES)), compression: 'gzip' },
    ]);
    const deb = await home.banger(['image', 'pull', `127.0.0.1:${reg.port}/test/deb:v1`, '--name', 'deb']);
    assert.equal(deb.code, 0, deb.stderr);
  } finally {
    reg.stop();
  }
  const kernel = await home.banger(['kernel', 'pull', 'debian-bookworm-cloud']);
  assert.ok(kernel.code === 0 || /already pulled/.test(kernel.stderr), kernel.stderr);
  const stop = await home.banger(['daemon', 'stop'], 60_000);
  assert.equal(stop.code, 0, stop.stderr);
  // Bridge mode from here on, with this file's own dns_listen port.
  const config = new Paths(home.env, 0).configFile;
  mkdirSync(dirname(config), { recursive: true });
  writeFileSync(config, `${TEST_CONFIG}network_mode = "bridge"\ndns_listen = "127.0.0.1:${DNS_PORT}"\n`);
  await host.check(['ip', 'netns', 'add', NS], { timeoutMs: 30_000 });
  nsMade = true;
  await host.check(['ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up'], { timeoutMs: 30_000 });
});

after(async () => {
  if (skip) return;
  // The daemon's socket is reachable from here; cleanup stops it and kills any qemu of this home.
  await home.cleanup();
  if (nsMade) await host.run(['ip', 'netns', 'del', NS], { timeoutMs: 30_000 });
  const leaked = await host.run(['ip', 'link', 'show', 'dev', 'br-fc'], { timeoutMs: 30_000 });
  assert.notEqual(leaked.code, 0, 'no bridge appeared in the host namespace');
});

test(
  'bridge mode in a namespace: two VMs get distinct IPs and <name>.vm answers; --nat gives one MASQUERADE rule across stop/start; delete leaves no name, tap or rule',
  { skip },
  async () => {
    await ok(['vm', 'create', '--name', 'bra', '--image', 'bb', '--nat', '-p', '127.0.0.1:18080:8080']);
    await ok(['vm', 'create', '--name', 'brb', '--image', 'bb']);
    const a = await show('bra');
    const b = await show('brb');
    assert.match(a.ip ?? '', /^172\.16\.0\.\d+$/);
    assert.match(b.ip ?? '', /^172\.16\.0\.\d+$/);
    assert.notEqual(a.ip, b.ip);
    assert.equal(a.ssh, `${a.ip}:22`);

    assert.deepEqual(await dig('bra.vm'), { status: 'NOERROR', answers: [a.ip] });
    assert.deepEqual(await dig('brb.vm'), { status: 'NOERROR', answers: [b.ip] });
    assert.equal((await dig('nosuchvm.vm')).status, 'NXDOMAIN');

    let net = await nsNet();
    assert.deepEqual(net.taps.sort(), [`tap-${a.id.slice(0, 11)}`, `tap-${b.id.slice(0, 11)}`].sort());
    assert.equal(natRulesFor(net.rules, a.ip as string), 1, net.rules.join('\n'));
    assert.equal(natRulesFor(net.rules, b.ip as string), 0, 'no rule without --nat');

    // Published ports (issue 14): a guest HTTP server reached on the namespace's 127.0.0.1:18080.
    const serve =
      'busybox mkdir -p /tmp/www && echo hello-from-bra > /tmp/www/index.html && ' +
      'busybox setsid busybox httpd -f -p 8080 -h /tmp/www </dev/null >/dev/null 2>&1 &';
    const httpGet = async (port: number): Promise<string> => {
      for (let i = 0; i < 20; i++) {
        const r = await inNs([BUSYBOX, 'wget', '-q', '-O', '-', `http://127.0.0.1:${port}/`], 5_000);
        if (r.code === 0) return r.stdout;
        await new Promise((res) => setTimeout(res, 500));
      }
      return '(no answer)';
    };
    await ok(['vm', 'ssh', 'bra', '--', 'sh', '-c', serve]);
    assert.equal(await httpGet(18080), 'hello-from-bra\n', '-p reaches the guest in bridge mode');
    await ok(['vm', 'publish', 'bra', '18081:8080']);
    assert.equal(await httpGet(18081), 'hello-from-bra\n', 'vm publish on the running VM');
    await ok(['vm', 'unpublish', 'bra', '18081']);
    const gone = await inNs([BUSYBOX, 'wget', '-q', '-O', '-', 'http://127.0.0.1:18081/'], 5_000);
    assert.notEqual(gone.code, 0, 'unpublished');
    const clash = await bangerNs(['vm', 'publish', 'brb', '18080:80']);
    assert.notEqual(clash.code, 0);
    assert.match(clash.stderr, /port 127\.0\.0\.1:18080\/tcp is already published by VM "bra"/);

    await ok(['vm', 'stop', 'bra']);
    assert.equal((await dig('bra.vm')).status, 'NXDOMAIN', 'a stopped VM has no name');
    net = await nsNet();
    assert.equal(natRulesFor(net.rules, a.ip as string), 0);
    const stopped = await inNs([BUSYBOX, 'wget', '-q', '-O', '-', 'http://127.0.0.1:18080/'], 5_000);
    assert.notEqual(stopped.code, 0, 'the relay closes at stop');
    await ok(['vm', 'start', 'bra']);
    assert.equal((await show('bra')).ip, a.ip, 'the IP is kept across stop/start');
    await ok(['vm', 'ssh', 'bra', '--', 'sh', '-c', serve]);
    assert.equal(await httpGet(18080), 'hello-from-bra\n', 'published again at start');
    net = await nsNet();
    assert.equal(
      natRulesFor(net.rules, a.ip as string),
      1,
      `still one rule after stop/start:\n${net.rules.join('\n')}`,
    );

    await ok(['vm', 'delete', 'bra']);
    assert.equal((await dig('bra.vm')).status, 'NXDOMAIN', 'deleted');
    await ok(['vm', 'publish', 'brb', '18080:8080']); // the port is free again, also in the store
    await ok(['vm', 'unpublish', 'brb', '18080']);
    assert.deepEqual(await dig('brb.vm'), { status: 'NOERROR', answers: [b.ip] });
    net = await nsNet();
    assert.equal(natRulesFor(net.rules, a.ip as string), 0, 'no rule after delete');

    await ok(['vm', 'delete', 'brb']);
    assert.equal((await dig('brb.vm')).status, 'NXDOMAIN');
    assert.deepEqual(await nsNet(), { taps: [], rules: [] }, 'no tap or rule remains');
  },
);

test(
  "bridge mode in a namespace: a Debian VM with sshd is reached as `ssh NAME.vm` through banger's ssh_config",
  { skip },
  async () => {
    await ok(['vm', 'create', '--name', 'brssh', '--image', 'deb']);
    const v = await show('brssh');
    assert.equal(v.ssh, `${v.ip}:22`);
    const sshConfig = new Paths(home.env, 0).sshConfigFile;
    assert.match(
      readFileSync(sshConfig, 'utf8'),
      new RegExp(`Host brssh\\.vm\\n {2}HostName ${v.ip?.replaceAll('.', '\\.')}\\n {2}Port 22\\n`),
    );
    const r = await inNs(
      [
        'ssh',
        '-F',
        sshConfig,
        '-o',
        'BatchMode=yes',
        '-o',
        'ConnectTimeout=20',
        'brssh.vm',
        '--',
        'hostname; ip -4 -o addr show',
      ],
      60_000,
    );
    assert.equal(r.code, 0, `ssh brssh.vm: ${r.stderr}`);
    assert.match(r.stdout, /^brssh\n/);
    assert.ok(r.stdout.includes(`${v.ip}/24`), r.stdout);
    await ok(['vm', 'delete', 'brssh']);
    assert.deepEqual(await nsNet(), { taps: [], rules: [] });
  },
);

test(
  'bridge mode in a namespace: five parallel creates get five IPs; started two at a time, five taps and names; a daemon kill -9 and restart converges; after deleting all and a restart no tap, rule, bridge or route remains',
  { skip },
  async () => {
    const names = ['p1', 'p2', 'p3', 'p4', 'p5'];
    const created = await Promise.all(
      names.map((n) =>
        bangerNs(['vm', 'create', '--name', n, '--image', 'bb', '--memory', '256M', '--no-start', '--nat']),
      ),
    );
    created.forEach((r, i) => assert.equal(r.code, 0, `create ${names[i]}: ${r.stderr}`));
    const ips = await Promise.all(names.map(async (n) => (await show(n)).ip));
    assert.equal(new Set(ips).size, 5, `five distinct IPs: ${ips.join(' ')}`);
    assert.deepEqual(await nsNet(), { taps: [], rules: [] }, 'no tap or rule before start');

    for (let i = 0; i < names.length; i += 2) {
      const rs = await Promise.all(names.slice(i, i + 2).map((n) => bangerNs(['vm', 'start', n])));
      rs.forEach((r) => assert.equal(r.code, 0, r.stderr));
    }
    let net = await nsNet();
    assert.equal(net.taps.length, 5, net.taps.join(' '));
    assert.equal(net.rules.length, 5, net.rules.join('\n'));

    // kill -9 the daemon; a leftover tagged tap of a VM that no longer exists is swept by the next start.
    process.kill(home.daemonPid(), 'SIGKILL');
    const gone = 'e'.repeat(32);
    assert.equal((await inNs(['ip', 'tuntap', 'add', 'dev', 'tap-eeeeeeeeeee', 'mode', 'tap'])).code, 0);
    assert.equal((await inNs(['ip', 'link', 'set', 'dev', 'tap-eeeeeeeeeee', 'alias', `banger:${gone}`])).code, 0);
    await ok(['vm', 'list']); // starts the daemon again, in the namespace
    net = await nsNet();
    assert.equal(net.taps.length, 5, `the running VMs keep their taps, the stray one is swept: ${net.taps.join(' ')}`);
    assert.equal(net.rules.length, 5);
    for (const [i, n] of names.entries())
      assert.deepEqual(await dig(`${n}.vm`), { status: 'NOERROR', answers: [ips[i]] });

    const deleted = await Promise.all(names.map((n) => bangerNs(['vm', 'delete', n])));
    deleted.forEach((r) => assert.equal(r.code, 0, r.stderr));
    assert.deepEqual(await nsNet(), { taps: [], rules: [] });
    await ok(['daemon', 'stop']);
    await ok(['vm', 'list']); // a start with no bridge-mode VM left removes the bridge
    const links = JSON.parse((await inNs(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[];
    assert.deepEqual(
      links.map((l) => l.ifname),
      ['lo'],
    );
    assert.equal((await inNs(['ip', '-4', 'route', 'show'])).stdout.trim(), '', 'no route remains');
  },
);
