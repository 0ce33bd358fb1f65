/**
 * `npm run bench`: performance as ratios against peers measured in the same
 * run (docs/BENCHMARKS.md). Prints one table and writes bench-results.json.
 * Uses an isolated banger home under .test-cache/bench-home (kept between
 * runs so the default image is built once). Network: loopback only.
 *
 *   npm run bench                 B4, B6, B3, B2, B1, B1w, B8, B7
 *   npm run bench -- --only B4,B3
 *   npm run bench -- --runs 5
 *   npm run bench -- --only B3 --verbose   (also prints every B3 run)
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianBaseTar, LocalRegistry, pushImage } from '../test/helpers/oci-push.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const banger = join(repo, 'bin', 'banger.js');
const home = join(repo, '.test-cache', 'bench-home');
const env: Record<string, string> = {
  ...(process.env as Record<string, string>),
  HOME: join(home, 'home'),
  XDG_CONFIG_HOME: join(home, 'config'),
  XDG_STATE_HOME: join(home, 'state'),
  XDG_CACHE_HOME: join(home, 'cache'),
  XDG_RUNTIME_DIR: join(home, 'run'),
  NO_COLOR: '1',
};

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const RUNS = Math.min(20, Math.max(1, Number(argValue('--runs') ?? 3)));
const ONLY = argValue('--only')?.split(',');
const want = (id: string): boolean => !ONLY || ONLY.includes(id);

function time(argv: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    env: opts.env ?? env,
    cwd: opts.cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    timeout: 15 * 60_000,
  });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr?.slice(-500)}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const b = (...args: string[]): string[] => [process.execPath, banger, ...args];
const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

interface Row {
  id: string;
  what: string;
  banger_ms: number;
  peer_ms: number | null;
  ratio: number | null;
  target: string;
  note?: string;
}
const rows: Row[] = [];
const add = (
  id: string,
  what: string,
  bangerMs: number,
  peerMs: number | null,
  target: string,
  note?: string,
): void => {
  rows.push({
    id,
    what,
    banger_ms: Math.round(bangerMs),
    peer_ms: peerMs === null ? null : Math.round(peerMs),
    ratio: peerMs ? Number((bangerMs / peerMs).toFixed(3)) : null,
    target,
    ...(note ? { note } : {}),
  });
};

function bench4(): void {
  spawnSync(process.execPath, [banger, 'vm', 'list'], { env });
  const ours: number[] = [];
  const peer: number[] = [];
  for (let i = 0; i < Math.max(RUNS, 10); i++) {
    ours.push(time(b('vm', 'list')));
    peer.push(time([process.execPath, '-e', '0']));
  }
  add('B4', 'banger vm list (daemon running) vs node -e 0', median(ours), median(peer), '≤ 2.5');
}

function bench6(): void {
  const pid = Number(readFileSync(join(home, 'run', 'banger', 'bangerd.pid'), 'utf8'));
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  rows.push({
    id: 'B6',
    what: 'daemon RSS, idle (MiB)',
    banger_ms: Math.round(rss / 1048576),
    peer_ms: null,
    ratio: null,
    target: '< 80 MiB',
  });
}

/**
 * B3: vm run --rm -- true vs the same kernel, initrd and a raw copy of the rootfs booted by the
 * hand-written qemu command line in scripts/bench/bare-boot.sh (not banger's builders).
 * Fair by construction: the peer gets the vCPUs and memory a default `vm run` VM gets (read from a
 * VM created without starting), and the runs interleave (banger, peer, peer, banger, ...) so a load
 * that drifts during the run weighs on both sides alike.
 */
function bench3(): void {
  const probe = 'bench-b3-spec';
  spawnSync(process.execPath, [banger, 'vm', 'delete', probe], { env });
  time(b('vm', 'create', '--no-start', '--name', probe));
  const shown = spawnSync(process.execPath, [banger, 'vm', 'show', probe, '--json'], { env, encoding: 'utf8' });
  spawnSync(process.execPath, [banger, 'vm', 'delete', probe], { env });
  const spec = JSON.parse(shown.stdout) as { vcpu: number; memory_mib: number };
  const peerEnv = { ...env, BARE_SMP: String(spec.vcpu), BARE_MEM_MIB: String(spec.memory_mib) };
  const ours: number[] = [];
  const peer: number[] = [];
  // --cold: B3 measures a cold boot, whether or not a warm-start template exists (B7 measures those).
  const runOurs = (): void => {
    ours.push(time(b('vm', 'run', '--rm', '--cold', '--', 'true')));
  };
  const runPeer = (): void => {
    const out = spawnSync('sh', [join(repo, 'scripts', 'bench', 'bare-boot.sh'), '1'], {
      env: peerEnv,
      encoding: 'utf8',
      timeout: 5 * 60_000,
    });
    if (out.status !== 0) throw new Error(`bare boot failed: ${out.stderr}`);
    peer.push(Number(out.stdout.trim()));
  };
  for (let i = 0; i < RUNS; i++) {
    if (i % 2 === 0) {
      runOurs();
      runPeer();
    } else {
      runPeer();
      runOurs();
    }
  }
  if (process.argv.includes('--verbose'))
    console.error(`B3 runs (ms): banger ${ours.map(Math.round).join(' ')}; peer ${peer.join(' ')}`);
  add(
    'B3',
    'vm run --rm -- true vs bare qemu boot to ssh (scripts/bench/bare-boot.sh)',
    median(ours),
    median(peer),
    '≤ 1.3, then ≤ 1.15',
    `${spec.vcpu} vCPU, ${spec.memory_mib} MiB each, interleaved; host-side overhead ${Math.round(median(ours) - median(peer))} ms`,
  );
}

/** B2: vm create --no-start from images holding 2 GiB and 8 GiB of data, vs cp --sparse=always of that rootfs. */
function bench2(): void {
  const work = join(home, 'b2');
  mkdirSync(work, { recursive: true });
  for (const gib of [2, 8]) {
    const name = `bench-${gib}g`;
    if (spawnSync(process.execPath, [banger, 'image', 'show', name], { env }).status !== 0) {
      const file = join(work, `${name}.ext4`);
      // Incompressible data inside a filesystem the image pipeline can register.
      spawnSync('sh', [
        '-c',
        `head -c ${gib}G /dev/urandom > ${work}/blob && mkdir -p ${work}/t && mv ${work}/blob ${work}/t/blob`,
      ]);
      time(['mkfs.ext4', '-q', '-F', '-d', join(work, 't'), file, `${gib + 1}G`]);
      rmSync(join(work, 't'), { recursive: true, force: true });
      time(b('image', 'register', name, '--rootfs', file, '--kernel-ref', 'debian-bookworm-cloud'));
    }
    const img = JSON.parse(
      spawnSync(process.execPath, [banger, 'image', 'show', name, '--json'], { env, encoding: 'utf8' }).stdout,
    ) as { rootfs: string };
    const ours: number[] = [];
    const peer: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      ours.push(time(b('vm', 'create', '--name', `b2-${gib}-${i}`, '--image', name, '--no-start')));
      time(b('vm', 'delete', `b2-${gib}-${i}`));
      peer.push(time(['cp', '--sparse=always', img.rootfs, join(work, 'copy.ext4')]));
      rmSync(join(work, 'copy.ext4'), { force: true });
    }
    add(
      `B2-${gib}G`,
      `vm create --no-start, ${gib} GiB image vs cp --sparse=always`,
      median(ours),
      median(peer),
      '≤ 0.2, flat',
    );
  }
}

/** B1/B1w: image pull from a local registry vs skopeo copy + umoci unpack + mkfs.ext4 -d. */
async function bench1(): Promise<void> {
  const reg = await LocalRegistry.start();
  try {
    const base = readFileSync(
      debianBaseTar(['systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'openssh-server', 'iproute2', 'sudo']),
    );
    await pushImage(reg.port, 'bench/deb', 'v1', [{ tar: base, compression: 'gzip' }]);
    const ref = `127.0.0.1:${reg.port}/bench/deb:v1`;
    const work = join(home, 'b1');
    const cold: number[] = [];
    const warm: number[] = [];
    const peerCold: number[] = [];
    const peerWarm: number[] = [];
    // Untimed first pull: the default kernel is installed on first use.
    time(b('image', 'pull', ref, '--name', 'b1'));
    for (let i = 0; i < RUNS; i++) {
      rmSync(join(home, 'cache', 'banger', 'oci'), { recursive: true, force: true });
      spawnSync(process.execPath, [banger, 'image', 'delete', 'b1'], { env });
      cold.push(time(b('image', 'pull', ref, '--name', 'b1')));
      time(b('image', 'delete', 'b1'));
      warm.push(time(b('image', 'pull', ref, '--name', 'b1')));
      time(b('image', 'delete', 'b1'));
      rmSync(work, { recursive: true, force: true });
      mkdirSync(work, { recursive: true });
      const t0 = Date.now();
      time(['skopeo', 'copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${work}/layout:v1`]);
      const t1 = Date.now();
      time(['umoci', 'unpack', '--image', `${work}/layout:v1`, `${work}/bundle`]);
      time(['mkfs.ext4', '-q', '-F', '-d', `${work}/bundle/rootfs`, `${work}/rootfs.ext4`, '2G']);
      const t2 = Date.now();
      peerCold.push(t2 - t0);
      rmSync(`${work}/bundle`, { recursive: true, force: true });
      const t3 = Date.now();
      time(['umoci', 'unpack', '--image', `${work}/layout:v1`, `${work}/bundle`]);
      time(['mkfs.ext4', '-q', '-F', '-d', `${work}/bundle/rootfs`, `${work}/rootfs.ext4`, '2G']);
      peerWarm.push(Date.now() - t3);
      void t1;
    }
    add('B1', 'image pull, cold blob cache vs skopeo + umoci + mkfs.ext4 -d', median(cold), median(peerCold), '≤ 0.5');
    add('B1w', 'image pull, warm blob cache vs umoci unpack + mkfs.ext4 -d', median(warm), median(peerWarm), '≤ 0.5');
  } finally {
    reg.stop();
  }
}

/**
 * B8: `vm workspace prepare` of a repo of 20,000 small tracked files into a running VM (default image,
 * sshd) vs a hand-written `git archive HEAD | ssh … tar -x` into the same VM.
 */
function bench8(): void {
  const work = join(home, 'b8');
  const src = join(work, 'repo');
  if (!existsSync(join(src, '.git'))) {
    rmSync(work, { recursive: true, force: true });
    for (let d = 0; d < 200; d++) {
      mkdirSync(join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(join(src, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`);
    }
    const git = ['git', '-C', src, '-c', 'user.name=bench', '-c', 'user.email=bench@example.invalid'];
    time([...git, 'init', '-q']);
    time([...git, 'add', '-A']);
    time([...git, 'commit', '-q', '-m', '20000 files']);
  }
  const vm = 'bench-b8';
  spawnSync(process.execPath, [banger, 'vm', 'delete', vm], { env });
  time(b('vm', 'create', '--name', vm));
  try {
    const sshConfig = spawnSync(process.execPath, [banger, 'ssh-config'], { env, encoding: 'utf8' }).stdout.trim();
    const peerCmd = `git -C '${src}' archive HEAD | ssh -F '${sshConfig}' -o BatchMode=yes ${vm}.vm 'rm -rf /root/peer && mkdir -p /root/peer && tar -x -C /root/peer'`;
    const ours: number[] = [];
    const peer: number[] = [];
    const shipOurs = (): number => time(b('vm', 'workspace', 'prepare', vm, src, '--force'));
    const shipPeer = (): number => time(['sh', '-c', peerCmd]);
    // Untimed: the freshly booted guest still settles (first-boot work), and both get warm caches.
    shipOurs();
    shipPeer();
    for (let i = 0; i < RUNS; i++) {
      // Alternating order, so neither side always follows the other.
      if (i % 2 === 0) {
        ours.push(shipOurs());
        peer.push(shipPeer());
      } else {
        peer.push(shipPeer());
        ours.push(shipOurs());
      }
    }
    add('B8', 'workspace prepare, 20,000 small files vs git archive | ssh tar -x', median(ours), median(peer), '≤ 1.5');
  } finally {
    spawnSync(process.execPath, [banger, 'vm', 'delete', vm], { env });
  }
}

/**
 * B7: warm start (issue 17). On an image of Debian with systemd and sshd pulled from a local registry:
 * one cold run (kernel install, untimed), `image warm` (the template, untimed), then `vm run --rm -- true`
 * restored from the template (median of RUNS) vs one `vm run --rm --cold -- true`.
 */
async function bench7(): Promise<void> {
  const reg = await LocalRegistry.start();
  try {
    const base = readFileSync(
      debianBaseTar(['systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'openssh-server', 'iproute2', 'sudo']),
    );
    await pushImage(reg.port, 'bench/deb7', 'v1', [{ tar: base, compression: 'gzip' }]);
    spawnSync(process.execPath, [banger, 'image', 'delete', 'b7'], { env });
    time(b('image', 'pull', `127.0.0.1:${reg.port}/bench/deb7:v1`, '--name', 'b7'));
    time(b('vm', 'run', '--rm', '--image', 'b7', '--cold', '--', 'true'));
    const warmMs = time(b('image', 'warm', 'b7'));
    // A restore that fell back to a cold boot would pass for a slow warm start: the daemon log says so.
    const daemonLog = join(home, 'state', 'banger', 'bangerd.log');
    const fallbacks = (): number =>
      existsSync(daemonLog) ? readFileSync(daemonLog, 'utf8').split('restore from the template failed').length - 1 : 0;
    const before = fallbacks();
    const ours: number[] = [];
    for (let i = 0; i < RUNS; i++) ours.push(time(b('vm', 'run', '--rm', '--image', 'b7', '--', 'true')));
    if (fallbacks() !== before) throw new Error(`B7: ${fallbacks() - before} warm run(s) fell back to a cold boot`);
    const cold = time(b('vm', 'run', '--rm', '--image', 'b7', '--cold', '--', 'true'));
    add(
      'B7',
      'vm run --rm -- true from a template vs the same with --cold',
      median(ours),
      cold,
      '< 3 s and ≤ 0.25',
      `image warm took ${Math.round(warmMs)} ms`,
    );
  } finally {
    reg.stop();
  }
}

async function main(): Promise<void> {
  mkdirSync(join(home, 'run'), { recursive: true, mode: 0o700 });
  mkdirSync(env.HOME as string, { recursive: true });
  // No background template builds: they would share the CPU with the timed runs (B7 warms explicitly).
  const cfg = join(home, 'config', 'banger', 'config.toml');
  if (!existsSync(cfg)) {
    mkdirSync(join(home, 'config', 'banger'), { recursive: true });
    writeFileSync(cfg, 'warm_start_background = false\n');
  }
  // Warm up: daemon, default kernel and image (--no-warmup: the caller just did; B1 needs neither a VM nor the default image).
  if (!process.argv.includes('--no-warmup') && ['B4', 'B6', 'B3', 'B2'].some(want))
    time(b('vm', 'run', '--rm', '--', 'true'));
  if (want('B4')) bench4();
  if (want('B6')) bench6();
  if (want('B3')) bench3();
  if (want('B2')) bench2();
  if (want('B1') && existsSync('/usr/bin/skopeo') && existsSync('/usr/bin/umoci')) await bench1();
  if (want('B8')) bench8();
  if (want('B7')) await bench7();
  const w = [8, 58, 10, 10, 8, 10];
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(w[i] ?? 10)).join(' ');
  console.log(line(['id', 'what', 'banger', 'peer', 'ratio', 'target']));
  for (const r of rows) {
    const unit = r.id === 'B6' ? ' MiB' : ' ms';
    console.log(
      line([
        r.id,
        r.what,
        `${r.banger_ms}${unit}`,
        r.peer_ms === null ? '-' : `${r.peer_ms} ms`,
        r.ratio === null ? '-' : String(r.ratio),
        r.target,
      ]) + (r.note ? `  (${r.note})` : ''),
    );
  }
  writeFileSync(
    join(repo, 'bench-results.json'),
    `${JSON.stringify({ date: new Date().toISOString(), runs: RUNS, rows }, null, 2)}\n`,
  );
  void copyFileSync;
  void spawn;
}

void main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
