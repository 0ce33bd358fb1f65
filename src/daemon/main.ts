import { rm, writeFile } from 'node:fs/promises';
import type { DaemonStatus, ImageView, KernelView } from '../api/methods.js';
import type { ImageRow } from '../store/images.js';
import { loadConfigFile } from '../config/file.js';
import { constants as osConstants } from 'node:os';
import { AppError, badRequest } from '../errors.js';
import { ImageService, type BuildParams, type PullParams } from '../services/image/service.js';
import { runChecks } from '../services/doctor/checks.js';
import { KernelService, type ImportParams } from '../services/kernel/service.js';
import type { KernelRow } from '../store/kernels.js';
import { SshKeys } from '../services/vm/sshkeys.js';
import { VmService, type CreateParams } from '../services/vm/service.js';
import { parseSize } from '../config/sizes.js';
import { CONSOLE_CHECK_MS } from '../services/vm/console.js';
import { openStore, schemaVersion } from '../store/db.js';
import { ImageRepo } from '../store/images.js';
import { KernelRepo } from '../store/kernels.js';
import { migrationStatus } from '../store/migrations.js';
import { OperationRepo } from '../store/operations.js';
import { VmRepo } from '../store/vms.js';
import { prepareDirs } from '../system/dirs.js';
import { StateLock } from '../system/statelock.js';
import { sweepOrphans } from '../services/sweep.js';
import { testPauses } from '../services/testpause.js';
import { decideAccel, HostProbe } from '../system/host.js';
import { NodeRunner } from '../system/node-runner.js';
import { Paths } from '../system/paths.js';
import { bangerVersion } from '../version.js';
import { QemuDriver } from '../vmm/qemu/driver.js';
import { FirecrackerDriver } from '../vmm/firecracker/driver.js';
import { DAEMON_USAGE, parseDaemonArgs, type DaemonMode } from './args.js';
import { streamLogger } from './logger.js';
import { logDoctorRows } from './startup-doctor.js';
import { DaemonServer, type Handlers } from './server.js';

function imageView(i: ImageRow): ImageView {
  return {
    id: i.id,
    name: i.name,
    source: i.source,
    kernel: i.kernelName,
    distro: i.distro,
    size_bytes: i.sizeBytes,
    work_seed: i.workSeedPath !== undefined,
    created_at: i.createdAt,
  };
}

function kernelView(k: KernelRow): KernelView {
  return {
    name: k.name,
    distro: k.distro,
    version: k.version,
    format: k.format,
    source: k.source,
    sha256: k.sha256,
    initrd: k.hasInitrd,
    modules: k.moduleCount,
    traits: k.traits,
    created_at: k.createdAt,
  };
}

function checkSignal(sig: string | undefined): NodeJS.Signals {
  if (sig === undefined) return 'SIGKILL';
  if (!(sig in osConstants.signals)) throw badRequest(`unknown signal ${sig}`, 'e.g. --signal SIGTERM');
  return sig as NodeJS.Signals;
}

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
  const db = openStore(paths.dbFile);
  const ops = new OperationRepo(db);
  ops.closeInterrupted();
  ops.prune();

  const lifetime = new AbortController();
  const runner = new NodeRunner();
  const cpu = await host.cpuInfo();
  const accel = decideAccel(config.accel, await host.kvmReadWrite(), cpu);
  log.info('bangerd starting', { version, pid: process.pid, accel: accel.accel, reason: accel.reason });

  const kernelRepo = new KernelRepo(db);
  const imageRepo = new ImageRepo(db);
  const vmRepo = new VmRepo(db);
  const kernels = new KernelService(paths, kernelRepo, runner, log, lifetime.signal, {
    catalog: config.catalog,
    fetchPolicy: { insecureHosts: config.insecureRegistries },
  });
  const images = new ImageService(paths, imageRepo, kernels, runner, log, lifetime.signal, {
    mirror: config.mirror,
    isRoot: uid === 0,
    defaultImage: config.defaultImageName,
    usedBy: (id) => vmRepo.namesByImage(id),
    defaultKernel: config.defaultKernelName,
    insecureHosts: config.insecureRegistries,
    maxUnpackedBytes: config.maxUnpackedBytes,
  });
  const keys = new SshKeys(runner, config.sshKeyPath ?? paths.sshKey, paths.knownHosts, paths.tmpDir);
  const vms = new VmService({
    paths,
    vms: vmRepo,
    images: imageRepo,
    imageService: images,
    // Firecracker is refused by the VM service from what it declares (KVM, bridge networking).
    driver:
      config.vmm === 'firecracker'
        ? new FirecrackerDriver(runner, config.firecrackerBin, { kvmUsable: accel.accel === 'kvm' })
        : new QemuDriver(runner, config.qemuBin),
    runner,
    keys,
    config,
    accel,
    tscKhz: cpu.tscKhz,
    log,
    host: { cpus: host.cpuCount(), memBytes: host.memBytes() },
    pause: testPauses(process.env.BANGER_TEST_PAUSE, log),
  });

  await vms.reconcile();
  await sweepOrphans(
    paths,
    {
      imageIds: imageRepo.list().map((i) => i.id),
      kernelNames: kernelRepo.list().map((k) => k.name),
      vmIds: vmRepo.list().map((v) => v.id),
    },
    log,
  );

  const started = Date.now();
  const handlers = {} as Handlers;
  const server = new DaemonServer(paths.socket, version, handlers, ops, log);
  const shutdown = async (why: string): Promise<void> => {
    log.info('bangerd stopping', { why });
    lifetime.abort();
    await server.close();
    await rm(paths.socket, { force: true });
    await rm(paths.pidFile, { force: true });
    db.close();
    stateLock.release();
    process.exit(0);
  };

  Object.assign(handlers, {
    'daemon.status': (): DaemonStatus => ({
      pid: process.pid,
      version,
      uptime_s: Math.round((Date.now() - started) / 1000),
      socket: paths.socket,
      state_dir: paths.stateDir,
      operations: Math.max(0, server.inflight.size - 1),
    }),
    'daemon.stop': () => {
      setTimeout(() => void shutdown('daemon.stop'), 50);
      return { stopping: true };
    },
    'daemon.operations.list': () =>
      [...server.inflight.entries()].map(([id, o]) => ({
        op_id: id,
        method: o.method,
        running_s: Math.round((Date.now() - o.started) / 1000),
      })),
    'vm.create': (p: Omit<CreateParams, 'disk_bytes'> & { disk_size?: string }, ctx) =>
      vms.create(withDiskBytes(p), ctx),
    'vm.list': () => vms.list(),
    'vm.resolve': (p: { refs: string[] }) => vms.resolveMany(p.refs),
    'vm.start': (p: { ref: string }, ctx) => vms.start(p.ref, ctx),
    'vm.stop': (p: { ref: string }, ctx) => vms.stop(p.ref, ctx),
    'vm.restart': (p: { ref: string }, ctx) => vms.restart(p.ref, ctx),
    'vm.kill': (p: { ref: string; signal?: string }) => vms.kill(p.ref, checkSignal(p.signal)),
    'vm.set': (p: { ref: string; vcpu?: number; memory_mib?: number; disk_size?: string }, ctx) =>
      vms.set(p.ref, withDiskBytes(p), ctx),
    'vm.prune': (_p: unknown, ctx) => vms.prune(ctx),
    'vm.stats': (p: { ref: string }) => vms.stats(p.ref),
    'vm.show': (p: { ref: string }) => vms.show(p.ref),
    'vm.delete': (p: { ref: string }, ctx) => vms.delete(p.ref, ctx),
    'vm.ssh_info': (p: { ref: string }) => vms.sshInfo(p.ref),
    'vm.logs': (p: { ref: string; tail_bytes?: number }) => vms.logs(p.ref, p.tail_bytes),
    'image.list': () => images.list().map(imageView),
    'image.show': (p: { name: string }) => ({
      ...imageView(images.get(p.name)),
      dir: images.get(p.name).dir,
      rootfs: images.get(p.name).rootfsPath,
      managed: images.get(p.name).managed,
      assets_version: images.get(p.name).assetsVersion,
      vms: vmRepo.namesByImage(images.get(p.name).id),
    }),
    'image.delete': (p: { name: string }) => images.delete(p.name),
    'image.build': async (p: BuildParams, ctx) => imageView(await images.buildCustom(p, ctx)),
    'image.pull': async (p: PullParams, ctx) => imageView(await images.pull(p, ctx)),
    'image.register': async (p: { name: string; rootfs: string; kernel_ref?: string; work_seed?: string }, ctx) =>
      imageView(await images.register(p, ctx)),
    'image.promote': async (p: { name: string }) => imageView(await images.promote(p.name)),
    'image.cache.prune': (p: { dry_run?: boolean }) => images.pruneCache(p.dry_run ?? false),
    'image.export': (p: { name: string; out: string }, ctx) => images.export(p.name, p.out, ctx),
    'kernel.list': () => kernels.list().map(kernelView),
    'kernel.catalog': () => kernels.catalog(),
    'kernel.show': async (p: { name: string }) => {
      const files = await kernels.files(p.name);
      return {
        ...kernelView(kernels.get(p.name)),
        dir: files.dir,
        kernel: files.kernel,
        initrd_path: files.initrd ?? null,
        modules_disk: files.modulesDisk ?? null,
        initrd_kind: files.manifest.initrd,
        initramfs_modules: files.manifest.initramfs_modules ?? [],
      };
    },
    'kernel.delete': (p: { name: string }) => kernels.delete(p.name),
    'kernel.import': async (p: ImportParams, ctx) => kernelView(await kernels.import(p, ctx)),
    'kernel.pull': async (p: { name: string; force?: boolean }, ctx) =>
      kernelView(await kernels.pull(p.name, p.force ?? false, ctx)),
  } satisfies Handlers);

  await server.listen();
  setInterval(() => void vms.capConsoles(), CONSOLE_CHECK_MS).unref();
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

/** The wire's disk_size as the VM service's disk_bytes, until the API schema parses sizes (issue 11). */
function withDiskBytes<T extends { disk_size?: string | undefined }>({
  disk_size,
  ...rest
}: T): Omit<T, 'disk_size'> & { disk_bytes?: number } {
  return { ...rest, ...(disk_size === undefined ? {} : { disk_bytes: parseSize(disk_size, '--disk-size') }) };
}
