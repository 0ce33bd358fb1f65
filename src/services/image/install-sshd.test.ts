import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { Catalog } from '../../catalog/catalog.js';
import { AppError } from '../../errors.js';
import { openStore } from '../../store/db.js';
import { ImageRepo } from '../../store/images.js';
import { Paths } from '../../system/paths.js';
import { nullLogger, quietContext } from '../context.js';
import { checkInstallSshd, defaultRoutes, parseOsRelease, sshdInstallCommand } from './install-sshd.js';
import { ImageService } from './service.js';

test('parseOsRelease: unquotes values, skips comments and junk', () => {
  assert.deepEqual(
    parseOsRelease('# c\nID=debian\nID_LIKE="rhel fedora"\nNAME=\'Arch\'\nbad line\n  VERSION_ID="12"\n'),
    {
      ID: 'debian',
      ID_LIKE: 'rhel fedora',
      NAME: 'Arch',
      VERSION_ID: '12',
    },
  );
});

test('sshdInstallCommand: the package manager by ID, then ID_LIKE', () => {
  const cases: [string, string, RegExp][] = [
    ['ID=debian\n', 'apt', /apt-get install -y --no-install-recommends openssh-server systemd-sysv/],
    ['ID=ubuntu\nID_LIKE=debian\n', 'apt', /^apt-get update && /],
    ['ID=linuxmint\nID_LIKE="ubuntu debian"\n', 'apt', /openssh-server/],
    ['ID=alpine\n', 'apk', /^apk add --no-cache openssh-server$/],
    ['ID=fedora\n', 'dnf', /^dnf install -y openssh-server systemd$/],
    ['ID="rocky"\nID_LIKE="rhel centos fedora"\n', 'dnf', /^dnf /],
    ['ID=arch\n', 'pacman', /^pacman -Sy --noconfirm openssh systemd-sysvcompat$/],
    ['ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n', 'zypper', /^zypper --non-interactive install/],
    ['ID=opensuse-leap\n', 'zypper', /openssh-server/],
  ];
  for (const [osr, manager, cmd] of cases) {
    const got = sshdInstallCommand(osr);
    assert.equal(got.manager, manager, osr);
    assert.match(got.command, cmd, osr);
  }
  for (const [osr, re] of [
    ['ID=gentoo\n', /distribution "gentoo"/],
    ['ID=nixos\nID_LIKE=foo\n', /"nixos" \(like foo\)/],
    ['', /distribution "unknown"/],
  ] as const)
    assert.throws(
      () => sshdInstallCommand(osr),
      (e: unknown) => e instanceof AppError && e.code === 'bad_request' && re.test(e.message),
    );
});

const V4_HEADER = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n';
const V4_DEFAULT = 'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n';
const V4_LAN = 'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n';
const V6_LO_REJECT =
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n';
const V6_DEFAULT =
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth1\n';
const V6_LAN =
  'fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n';

test('defaultRoutes: IPv4 and IPv6 default routes, not the kernel reject route on lo', () => {
  const cases: [string, string, string, string[]][] = [
    ['empty tables (a fresh network namespace)', '', '', []],
    ['header only, lo reject', V4_HEADER, V6_LO_REJECT, []],
    ['LAN routes only', V4_HEADER + V4_LAN, V6_LAN + V6_LO_REJECT, []],
    ['IPv4 default', V4_HEADER + V4_LAN + V4_DEFAULT, V6_LO_REJECT, ['eth0']],
    ['IPv6 default', V4_HEADER, V6_LAN + V6_DEFAULT + V6_LO_REJECT, ['eth1']],
    [
      'a default route that is down',
      `${V4_HEADER}eth0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n`,
      '',
      [],
    ],
  ];
  for (const [name, v4, v6, want] of cases) assert.deepEqual(defaultRoutes(v4, v6), want, name);
});

const tables = (ipv4: string, ipv6: string) => () => Promise.resolve({ ipv4, ipv6 });

test('checkInstallSshd: offline is refused as offline; with a route or a proxy, refused without the VM service (the daemon routes those pulls to pullWithSshd)', async () => {
  const offline = { proxy: undefined, routeTables: tables(V4_HEADER + V4_LAN, V6_LO_REJECT) };
  await assert.rejects(
    checkInstallSshd(offline),
    (e: unknown) =>
      e instanceof AppError &&
      e.code === 'precondition' &&
      /needs outbound network .* this host is offline/.test(e.message) &&
      /pull without --install-sshd/.test(e.hint ?? ''),
  );
  const proxy = { http: 'http://127.0.0.1:3128', https: undefined, noProxy: { all: false, entries: [] } };
  for (const d of [
    { proxy: undefined, routeTables: tables(V4_HEADER + V4_DEFAULT, '') },
    { proxy, routeTables: tables('', '') },
  ])
    await assert.rejects(
      checkInstallSshd(d as Parameters<typeof checkInstallSshd>[0]),
      /not available here .* way out via/,
    );
});

test('image pull --install-sshd on an offline host is refused before anything is contacted or made', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'sshd-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const runner = new FakeRunner();
  const repo = new ImageRepo(openStore(':memory:'));
  const never = (): Promise<never> => Promise.reject(new Error('not used'));
  let fetched = 0;
  const svc = new ImageService(
    new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0),
    repo,
    { ensure: never, files: never, bootReady: never, import: never, delete: never },
    runner,
    nullLogger,
    new AbortController().signal,
    {
      mirror: undefined,
      isRoot: false,
      defaultImage: 'debian-bookworm',
      usedBy: () => [],
      defaultKernel: 'k1',
      insecureHosts: [],
      maxUnpackedBytes: 2 ** 30,
      catalog: new Catalog({ source: undefined, policy: { insecureHosts: [] }, signal: new AbortController().signal }),
      http: () => {
        fetched++;
        return Promise.reject(new Error('no network in this test'));
      },
      egress: { proxy: undefined, routeTables: tables(V4_HEADER, V6_LO_REJECT) },
    },
  );
  // Port 9 on loopback: nothing listens; a registry error here would mean the check came too late.
  await assert.rejects(
    svc.pull({ ref: '127.0.0.1:9/team/app:v1', install_sshd: true }, quietContext()),
    (e: unknown) => e instanceof AppError && e.code === 'precondition' && /this host is offline/.test(e.message),
  );
  assert.equal(fetched, 0);
  assert.deepEqual(runner.calls, []);
  assert.deepEqual(repo.list(), []);
});
