import { rm, writeFile } from 'node:fs/promises';
import { Catalog } from '../catalog/catalog.js';
import { loadConfigFile } from '../config/read-file.js';
import { AppError } from '../errors.js';
import { ImageService } from '../services/image/service.js';
import { proxySettingsFromEnv, proxySummary } from '../net/proxy.js';
import { httpTransport } from '../net/transport.js';
import { runChecks } from '../services/doctor/checks.js';
import { KernelService } from '../services/kernel/service.js';
import { BridgeNetwork } from '../services/network/bridge.js';
import { VmDnsServer } from '../services/network/dns.js';
import { SshKeys } from '../services/vm/sshkeys.js';
import { VmAgents } from '../services/vm/agent.js';
import { VmExec } from '../services/vm/exec.js';
import { VmFiles } from '../services/vm/files.js';
import { VmService } from '../services/vm/service.js';
import { CONSOLE_CHECK_MS } from '../services/vm/console.js';
import { openStore, schemaVersion } from '../store/db.js';
import { ImageRepo } from '../store/images.js';
import { IpRepo } from '../store/ips.js';
import { VmWorkspaces } from '../services/vm/workspace.js';
import { PortRepo } from '../store/ports.js';
import { SnapshotRepo } from '../store/snapshots.js';
import { KernelRepo } from '../store/kernels.js';
import { migrationStatus } from '../store/migrations.js';
import { OperationRepo } from '../store/operations.js';
import { VmRepo } from '../store/vms.js';
import { prepareDirs } from '../system/dirs.js';
import { StateLock } from '../system/statelock.js';
import { sweepOrphans } from '../services/sweep.js';
import { testPauses } from '../services/testpause.js';
import { decideAccel, HostProbe, type AccelDecision } from '../system/host.js';
import { decideVmm } from '../vmm/choice.js';
import { probeVmmFacts } from '../vmm/facts.js';
import { NodeRunner } from '../system/node-runner.js';
import { Paths } from '../system/paths.js';
import { bangerVersion } from '../version.js';
import { agentDialer, selectVmmDriver } from './drivers.js';
import { DAEMON_USAGE, parseDaemonArgs, type DaemonMode } from './args.js';
import { streamLogger } from './logger.js';
import { logDoctorRows } from './startup-doctor.js';
import { daemonRoutes } from './routes/daemon.js';
import { imageRoutes } from './routes/image.js';
import { kernelRoutes } from './routes/kernel.js';
import { vmRoutes } from './routes/vm.js';
import { fsRoutes, procRoutes } from './routes/proc.js';
import { VmFileOps } from '../services/vm/fileops.js';
import { VmProcesses } from '../services/vm/processes.js';
import { VmReaper } from '../services/vm/reaper.js';
import { LifetimeRepo } from '../store/lifetimes.js';
import { quietContext } from '../services/context.js';
import { FileSync } from '../services/vm/filesync.js';
import { DaemonServer, type Handlers } from './server.js';
import { ApiToken } from './api-token.js';
import { parseApiListen } from '../config/api-listen.js';
import { pullWithSshd } from './install-sshd.js';
import { checkEgress } from '../services/image/install-sshd.js';

/** How often VM lifetimes (ttl, idle_ttl) are checked. */
const REAP_EVERY_MS = 5000;

/** `bangerd --check-migrations`: 0 compatible, 1 needs migration, 2 incompatible. */
async function checkMigrations(paths: Paths): Promise<number> {
  try {
    const db = openStore(paths.dbFile, { readonly: true });
    const v = schemaVersion(db);
    db.close();
    return migrationStatus(v);
  } catch {
    return 1;
  }
}

/** The composition root: the only place real runner, store, paths and services are built and wired. */
export async function main(argv: string[]): Promise<number> {
  let mode: DaemonMode;
  try {
    mode = parseDaemonArgs(argv);
  } catch (e) {
    reportFatal(e);
    return 2;
  }
  if (mode === 'version') {
    process.stdout.write(`bangerd ${bangerVersion()}\n`);
    return 0;
  }
  if (mode === 'help') {
    process.stdout.write(DAEMON_USAGE);
    return 0;
  }
  const uid = process.getuid?.() ?? 0;
  const paths = new Paths(process.env, uid);
  if (mode === 'check-migrations') return checkMigrations(paths);

  await prepareDirs(paths, uid);
  // Before anything reads or changes the state dir: a second daemon stops here.
  const stateLock = await StateLock.acquire(paths.stateLock, paths.stateDir);
  const host = new HostProbe();
  const config = await loadConfigFile(paths.configFile, host);
  const log = streamLogger(process.stderr, config.logLevel);
  const version = bangerVersion();
  if (process.env.BANGER_TEST_VERSION)
    log.warn('BANGER_TEST_VERSION is set: this daemon reports a made-up version (test-only)', { version });
  if (config.testInstallSshdOffline)
    log.warn('test_install_sshd_offline is set: image pull --install-sshd runs offline (test-only)', {});
  if (config.testAssumeKvm)
    log.warn(
      'test_assume_kvm is set: this daemon acts as if KVM were usable (test-only; only a fake firecracker runs)',
      {},
    );
  const db = openStore(paths.dbFile);
  const ops = new OperationRepo(db);
  ops.closeInterrupted();
  ops.prune();

  const lifetime = new AbortController();
  const runner = new NodeRunner();
  const cpu = await host.cpuInfo();
  const accel: AccelDecision = config.testAssumeKvm
    ? { accel: 'kvm', reason: 'test_assume_kvm = true (test-only: nothing boots under it)' }
    : decideAccel(config.accel, await host.kvmReadWrite(), cpu);
  log.info('bangerd starting', { version, pid: process.pid, accel: accel.accel, reason: accel.reason });

  const kernelRepo = new KernelRepo(db);
  // SPEC §1: vmm = "auto" settles here, once per daemon; `vm show` and doctor give the reason.
  const vmm = decideVmm(
    await probeVmmFacts({ config, accel, runner, which: (b) => host.which(b), kernel: (n) => kernelRepo.get(n) }),
  );
  log.info('vmm', { ...vmm });
  const driver = selectVmmDriver(vmm.vmm, config, runner, accel);
  const imageRepo = new ImageRepo(db);
  const vmRepo = new VmRepo(db);
  // Downloads honour HTTPS_PROXY/HTTP_PROXY/NO_PROXY from the daemon's environment (net/proxy.ts).
  const proxy = proxySettingsFromEnv(process.env);
  if (proxy.http !== undefined || proxy.https !== undefined) log.info('proxy settings', proxySummary(proxy));
  const http = httpTransport({ proxy });
  const fetchPolicy = { insecureHosts: config.insecureRegistries };
  const catalog = new Catalog({ source: config.catalog, policy: fetchPolicy, http, signal: lifetime.signal });
  const kernels = new KernelService(paths, kernelRepo, runner, log, lifetime.signal, { catalog, fetchPolicy, http });
  const images = new ImageService(paths, imageRepo, kernels, runner, log, lifetime.signal, {
    mirror: config.mirror,
    isRoot: uid === 0,
    defaultImage: config.defaultImageName,
    usedBy: (id) => vmRepo.namesByImage(id),
    defaultKernel: config.defaultKernelName,
    insecureHosts: config.insecureRegistries,
    maxUnpackedBytes: config.maxUnpackedBytes,
    catalog,
    http,
    egress: { proxy },
  });
  // Bridge mode (SPEC §7.3): the `<name>.vm` server on dns_listen, and the taps, leases and NAT rules.
  const dns = config.networkMode === 'bridge' ? new VmDnsServer(config.dnsListen) : undefined;
  if (dns) log.info('answering <name>.vm on dns_listen', await dns.start());
  const bridge = dns
    ? new BridgeNetwork({
        config,
        runner,
        euid: process.geteuid?.() ?? uid,
        ips: new IpRepo(db),
        records: dns.records,
        ...(uid === 0 ? {} : { tapOwner: uid }),
        routeResolver: await host.systemdResolved(),
        log,
      })
    : undefined;
  const keys = new SshKeys(runner, config.sshKeyPath ?? paths.sshKey, paths.knownHosts, paths.tmpDir);
  const agents = new VmAgents({
    paths,
    log,
    dial: agentDialer(driver.kind, paths),
    paused: (id) => vmRepo.get(id)?.state === 'paused',
  });
  const vms = new VmService({
    agents,
    paths,
    vms: vmRepo,
    images: imageRepo,
    imageService: images,
    driver,
    vmm,
    runner,
    keys,
    config,
    accel,
    tscKhz: cpu.tscKhz,
    log,
    host: { cpus: host.cpuCount(), memBytes: host.memBytes() },
    pause: testPauses(process.env.BANGER_TEST_PAUSE, log),
    ports: new PortRepo(db),
    snaps: new SnapshotRepo(db),
    ...(bridge ? { bridge } : {}),
  });

  await vms.reconcile();
  await vms.warm.killOrphanBuilds(new Set(vmRepo.list().map((v) => v.id)));
  await vms.warm.sweepMemory();
  await sweepOrphans(
    paths,
    {
      imageIds: imageRepo.list().map((i) => i.id),
      kernelNames: kernelRepo.list().map((k) => k.name),
      vmIds: vmRepo.list().map((v) => v.id),
    },
    log,
  );

  const procs = new VmProcesses({ vms: vmRepo, images: imageRepo, agents, log });
  const reaper = new VmReaper({
    lifetimes: new LifetimeRepo(db),
    vms: vmRepo,
    lastUse: (id) => procs.lastActivity(id),
    endProcesses: (id, why) => procs.forgetVm(id, why),
    stop: (id) => vms.stop(id, quietContext('reaper')),
    delete: (id) => vms.delete(id, quietContext('reaper')),
    log,
  });
  const started = Date.now();
  const handlers = {} as Handlers;
  const server = new DaemonServer(paths.socket, version, handlers, ops, log);
  const apiToken = new ApiToken(paths.apiToken);
  const shutdown = async (why: string): Promise<void> => {
    log.info('bangerd stopping', { why });
    lifetime.abort();
    // A template build in flight (`image warm` or a background one) leaves no qemu behind.
    await vms.warm.halt();
    await server.close();
    await dns?.stop();
    await rm(paths.socket, { force: true });
    await rm(paths.pidFile, { force: true });
    db.close();
    stateLock.release();
    process.exit(0);
  };

  Object.assign(handlers, {
    ...daemonRoutes({
      pid: process.pid,
      version,
      socket: paths.socket,
      stateDir: paths.stateDir,
      started,
      inflight: server.inflight,
      shutdown,
      apiToken,
    }),
    ...vmRoutes(
      vms,
      new VmExec({ vms: vmRepo, images: imageRepo, agents, log, sshInfo: (ref) => vms.sshInfo(ref) }),
      new VmFiles({ vms: vmRepo, images: imageRepo, agents }),
      new FileSync({ entries: config.fileSync, home: paths.home, vms: vmRepo, images: imageRepo, agents, log }),
      new VmWorkspaces(vmRepo),
      reaper,
    ),
    ...imageRoutes({
      images,
      warm: vms.warm,
      snapshotsOf: (id) => vms.snapshots.usersOfImage(id),
      usedBy: (id) => vmRepo.namesByImage(id),
      pullWithSshd: (p, ctx) =>
        pullWithSshd(
          {
            images,
            repo: imageRepo,
            vms,
            vmRepo,
            agents,
            runner,
            log,
            checkEgress: async () => {
              if (!config.testInstallSshdOffline) await checkEgress({ proxy });
            },
            allowOutbound: !config.testInstallSshdOffline,
          },
          p,
          ctx,
        ),
    }),
    ...kernelRoutes(kernels),
    ...procRoutes(procs),
    ...fsRoutes(new VmFileOps({ vms: vmRepo, images: imageRepo, agents })),
  } satisfies Handlers);

  await server.listen();
  if (config.apiListen !== undefined) {
    const { host, port } = parseApiListen(config.apiListen, config.apiListenRemote === true);
    await apiToken.get();
    const at = await server.listenTcp(host, port, apiToken);
    log.info('API listening on TCP (bearer token required)', { address: `${at.address}:${at.port}` });
  }
  setInterval(() => void vms.capConsoles(), CONSOLE_CHECK_MS).unref();
  // VM lifetimes (ttl, idle_ttl) from the store: a restarted daemon enforces them at once.
  void reaper.sweep();
  setInterval(() => void reaper.sweep(), REAP_EVERY_MS).unref();
  if (config.autoStopStaleAfterMs > 0) {
    const every = Math.min(60_000, Math.max(1000, Math.floor(config.autoStopStaleAfterMs / 4)));
    setInterval(() => void vms.stopStale(config.autoStopStaleAfterMs), every).unref();
  }
  await writeFile(paths.pidFile, `${process.pid}\n`);
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  log.info('bangerd ready', { socket: paths.socket });
  // SPEC §9: doctor's rows go to the log at start, off the start path: a second later, so the
  // first request (usually from the CLI that started this daemon) does not share the CPU with it.
  setTimeout(
    () =>
      void logDoctorRows(
        () => runChecks({ paths, host, runner, version, config, configError: undefined, arch: process.arch }),
        log,
      ),
    1000,
  ).unref();
  return new Promise<number>(() => undefined);
}

export function reportFatal(e: unknown): number {
  if (e instanceof AppError) {
    process.stderr.write(`bangerd: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`);
  } else {
    process.stderr.write(`bangerd: fatal: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  }
  return 1;
}
