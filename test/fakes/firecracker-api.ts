import { constants } from 'node:fs';
import { access, open, rm } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { decodeBody, SCHEMAS, type Schema } from './firecracker-schema.js';
import { MIN_FIRECRACKER_VERSION } from '../../src/vmm/firecracker/version.js';

/*
 * A faithful in-process stand-in for firecracker's API server, for tests only.
 * It answers on a Unix socket and enforces what firecracker v1.5.0 enforces
 * (src/api_server/src/parsed_request.rs, src/vmm/src/rpc_interface.rs,
 * src/vmm/src/vmm_config/*.rs, src/vmm/src/builder.rs), in the same order:
 *
 * 1. Routing on the first path segment: GET with a body, PUT/PATCH without one
 *    ("Empty PUT request.") and unknown method/path pairs are 400. The body is
 *    read by Content-Length only, as micro_http does: a chunked body counts as
 *    no body.
 * 2. Ids in /drives/{id} and /network-interfaces/{id} must be non-empty and
 *    alphanumeric or "_", and must equal drive_id / iface_id in the body.
 * 3. Bodies are decoded like firecracker's serde structs (firecracker-schema.ts).
 * 4. Pre-boot only: PUT machine-config (and PATCH), boot-source, drives,
 *    network-interfaces, vsock, logger, metrics and InstanceStart are 400 once
 *    the VM runs. Post-boot only: PATCH drives and network-interfaces,
 *    SendCtrlAltDel and FlushMetrics are 400 before it runs. (Firecracker's
 *    newest releases add PCI hotplug of drives and NICs after boot; v1.5.0
 *    does not, and neither does the fake.)
 * 5. Resource checks done when the PUT arrives, as in firecracker:
 *    boot-source opens the kernel and initrd files and checks the command line
 *    (printable ASCII, under 2048 bytes); a drive's path_on_host must exist and
 *    open read-write unless is_read_only; only one root drive (root sorts
 *    first, others keep PUT order); a guest MAC may not be used by another
 *    interface, a tap name is at most 15 bytes and not used by another
 *    interface; vsock binds uds_path, which must not exist yet; logger and
 *    metrics open their path read-write without creating it (firecracker
 *    before 1.14 does not create it) and metrics initialise only once.
 * 6. InstanceStart needs a boot source (machine-config defaults to 1 vCPU and
 *    128 MiB; a root drive is optional) and loads the kernel, which must be an
 *    ELF file on x86_64; success moves the state to Running.
 * Success is 204 with no body; failures are 400 with {"fault_message": ...}.
 * Not modelled: taps are not opened (see opts.openTap), no guest runs,
 * balloon/mmds/snapshot/cpu-config/entropy and rate-limiter contents.
 */

export interface FakeFirecrackerOptions {
  /** Instance id, as given with --id. */
  id?: string;
  /** What GET /version and GET / report; default the version this fake models (MIN_FIRECRACKER_VERSION, 1.5.0). */
  version?: string;
  /** Whether a tap of that name could be opened (firecracker opens it at PUT time); default yes. */
  openTap?: (name: string) => boolean;
  /** Called after SendCtrlAltDel is accepted, as a guest that honours it would shut down. */
  onCtrlAltDel?: () => void;
  /**
   * A host connection to the vsock Unix socket (firecracker's hybrid vsock); the default closes
   * it, as firecracker does when nothing in the guest listens.
   */
  onVsockConnect?: (socket: Socket) => void;
  /** Called with each request once answered (the fake binary logs them for its test). */
  onRequest?: (r: RecordedRequest) => void;
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** Parsed JSON body, the raw text when it is not JSON, undefined when absent. */
  body: unknown;
  status: number;
  fault?: string;
}

export interface FakeDrive {
  drive_id: string;
  path_on_host: string;
  is_root_device: boolean;
  is_read_only: boolean;
}

interface Reply {
  status: number;
  body?: unknown;
}

const PRE_BOOT_ONLY = 'The requested operation is not supported after starting the microVM.';
const POST_BOOT_ONLY = 'The requested operation is not supported before starting the microVM.';
const CMDLINE_MAX = 2048;
const IFNAME_MAX = 15;
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

class Fault extends Error {}
const fault = (message: string): Fault => new Fault(message);

/** Rust's io::Error wording for the errors a path check can hit. */
function ioText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const known: Record<string, string> = {
    ENOENT: 'No such file or directory (os error 2)',
    EACCES: 'Permission denied (os error 13)',
    EISDIR: 'Is a directory (os error 21)',
    EADDRINUSE: 'Address in use (os error 98)',
  };
  return (err.code !== undefined ? known[err.code] : undefined) ?? err.message;
}

async function openCheck(path: string, flags: number): Promise<Buffer> {
  const fh = await open(path, flags);
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0).catch(() => ({ bytesRead: 0 }));
    return head.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

const RW_NONBLOCK = constants.O_RDWR | constants.O_NONBLOCK;

export class FakeFirecracker {
  readonly requests: RecordedRequest[] = [];
  state: 'Not started' | 'Running' | 'Paused' = 'Not started';
  machine = { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false };
  bootSource: { kernel_image_path: string; initrd_path?: string; boot_args?: string } | undefined;
  readonly drives: FakeDrive[] = [];
  readonly nets: { iface_id: string; host_dev_name: string; guest_mac?: string }[] = [];
  vsock: { guest_cid: number; uds_path: string } | undefined;
  logger: Record<string, unknown> | undefined;
  metricsPath: string | undefined;
  ctrlAltDelCount = 0;
  private kernelHead: Buffer | undefined;
  private vsockServer: NetServer | undefined;
  private readonly server: HttpServer;

  private constructor(
    readonly socketPath: string,
    private readonly opts: FakeFirecrackerOptions,
  ) {
    this.server = createHttpServer((req, res) => void this.onRequest(req, res));
  }

  /** Listens on socketPath; fails like firecracker when the path already exists. */
  static async start(socketPath: string, opts: FakeFirecrackerOptions = {}): Promise<FakeFirecracker> {
    const fake = new FakeFirecracker(socketPath, opts);
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject);
      fake.server.listen(socketPath, () => {
        fake.server.off('error', reject);
        resolve();
      });
    });
    return fake;
  }

  get version(): string {
    return this.opts.version ?? MIN_FIRECRACKER_VERSION;
  }

  /** Stops answering and removes the sockets, like the process exiting. */
  async close(): Promise<void> {
    await closeServer(this.vsockServer);
    this.vsockServer = undefined;
    this.server.closeAllConnections();
    await closeServer(this.server);
    await rm(this.socketPath, { force: true });
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const length = Number(req.headers['content-length'] ?? 0);
    const raw = length > 0 ? Buffer.concat(chunks).subarray(0, length).toString('utf8') : undefined;
    const method = req.method ?? '';
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    let reply: Reply;
    try {
      reply = await this.handle(method, path, raw);
    } catch (e) {
      // Firecracker answers its own errors with 400; anything else is a bug in the fake, shown as a 500.
      reply =
        e instanceof Fault
          ? { status: 400, body: { fault_message: e.message } }
          : { status: 500, body: { fault_message: `fake firecracker internal error: ${String(e)}` } };
    }
    let body: unknown = raw;
    try {
      body = raw === undefined ? undefined : JSON.parse(raw);
    } catch {
      // keep the raw text
    }
    const rec: RecordedRequest = { method, path, body, status: reply.status };
    const fm = (reply.body as { fault_message?: string } | undefined)?.fault_message;
    if (fm !== undefined) rec.fault = fm;
    this.requests.push(rec);
    this.opts.onRequest?.(rec);
    if (reply.body === undefined) {
      res.writeHead(reply.status).end();
    } else {
      const text = JSON.stringify(reply.body);
      res
        .writeHead(reply.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
        .end(text);
    }
  }

  private async handle(method: string, path: string, raw: string | undefined): Promise<Reply> {
    const tokens = path.replace(/^\/+/, '').split('/');
    const first = tokens[0] ?? '';
    const hasBody = raw !== undefined;
    if (method === 'GET' && hasBody) throw fault('GET request cannot have a body.');
    if ((method === 'PUT' || method === 'PATCH') && !hasBody) throw fault(`Empty ${method} request.`);
    const body = (s: Schema): Record<string, unknown> => {
      const d = decodeBody(s, raw as string);
      if (!d.ok) throw fault(d.message);
      return d.value;
    };
    const route = `${method} ${first}`;
    switch (route) {
      case 'GET ':
        return {
          status: 200,
          body: {
            id: this.opts.id ?? 'anonymous-instance',
            state: this.state,
            vmm_version: this.version,
            app_name: 'Firecracker',
          },
        };
      case 'GET version':
        return { status: 200, body: { firecracker_version: this.version } };
      case 'GET machine-config':
        return { status: 200, body: { ...this.machine } };
      case 'PUT actions':
        return this.action(body(SCHEMAS.action).action_type as string);
      case 'PUT machine-config':
        return this.putMachine(body(SCHEMAS.machineConfig), false);
      case 'PATCH machine-config':
        return this.putMachine(body(SCHEMAS.machineConfigUpdate), true);
      case 'PUT boot-source':
        return this.putBootSource(body(SCHEMAS.bootSource));
      case 'PUT drives':
        return this.putDrive(idMatch(checkedId(tokens[1]), body(SCHEMAS.drive), 'drive_id'));
      case 'PATCH drives':
        return this.patchDrive(idMatch(checkedId(tokens[1]), body(SCHEMAS.driveUpdate), 'drive_id'));
      case 'PUT network-interfaces':
        return this.putNet(idMatch(checkedId(tokens[1]), body(SCHEMAS.networkInterface), 'iface_id'));
      case 'PATCH network-interfaces':
        return this.patchNet(idMatch(checkedId(tokens[1]), body(SCHEMAS.networkInterfaceUpdate), 'iface_id'));
      case 'PUT vsock':
        return this.putVsock(body(SCHEMAS.vsock));
      case 'PUT logger':
        return this.putLogger(body(SCHEMAS.logger));
      case 'PUT metrics':
        return this.putMetrics(body(SCHEMAS.metrics));
      case 'PATCH vm':
        return this.patchVm(body(SCHEMAS.vm).state as 'Paused' | 'Resumed');
    }
    const real = ['balloon', 'mmds', 'snapshot', 'cpu-config', 'entropy'];
    if (real.includes(first)) throw fault(`the fake firecracker does not model ${method} /${first}`);
    throw fault(`Invalid request method and/or path: ${method} ${first}.`);
  }

  /** PATCH /vm: pause or resume the vCPUs of a started VM (again in the same state is accepted). */
  private patchVm(to: 'Paused' | 'Resumed'): Reply {
    this.postBoot();
    this.state = to === 'Paused' ? 'Paused' : 'Running';
    return { status: 204 };
  }

  private preBoot(): void {
    if (this.state !== 'Not started') throw fault(PRE_BOOT_ONLY);
  }

  private postBoot(): void {
    if (this.state === 'Not started') throw fault(POST_BOOT_ONLY);
  }

  private async action(type: string): Promise<Reply> {
    if (type === 'InstanceStart') {
      this.preBoot();
      if (this.bootSource === undefined)
        throw fault('Start microvm error: Cannot start microvm without kernel configuration.');
      if (this.kernelHead === undefined || !this.kernelHead.equals(ELF_MAGIC)) {
        throw fault(
          'Start microvm error: Cannot load kernel due to invalid memory configuration or invalid kernel image: Invalid Elf magic number',
        );
      }
      this.state = 'Running';
      return { status: 204 };
    }
    this.postBoot();
    if (type === 'SendCtrlAltDel') {
      this.ctrlAltDelCount++;
      // A paused guest's vCPUs do not run: nothing acts on the key press.
      if (this.opts.onCtrlAltDel && this.state === 'Running') setImmediate(this.opts.onCtrlAltDel);
    }
    return { status: 204 };
  }

  private putMachine(b: Record<string, unknown>, partial: boolean): Reply {
    if (partial && Object.keys(b).length === 0) throw fault('Empty PATCH request.');
    this.preBoot();
    const next = {
      ...this.machine,
      ...(partial ? {} : { smt: false, track_dirty_pages: false }),
      ...b,
    } as typeof this.machine;
    if (next.smt && next.vcpu_count > 1 && next.vcpu_count % 2 === 1) {
      throw fault(
        'Machine config error: The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled.',
      );
    }
    if (next.mem_size_mib === 0) throw fault('Machine config error: The memory size (MiB) is invalid.');
    this.machine = {
      vcpu_count: next.vcpu_count,
      mem_size_mib: next.mem_size_mib,
      smt: next.smt,
      track_dirty_pages: next.track_dirty_pages,
    };
    return { status: 204 };
  }

  private async putBootSource(b: Record<string, unknown>): Promise<Reply> {
    this.preBoot();
    const kernel = b.kernel_image_path as string;
    const initrd = b.initrd_path as string | undefined;
    const args = b.boot_args as string | undefined;
    let head: Buffer;
    try {
      head = await openCheck(kernel, constants.O_RDONLY);
    } catch (e) {
      throw fault(`Boot source error: The kernel file cannot be opened: ${ioText(e)}`);
    }
    if (initrd !== undefined) {
      await openCheck(initrd, constants.O_RDONLY).catch((e: unknown) => {
        throw fault(
          `Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. ${ioText(e)}`,
        );
      });
    }
    if (args !== undefined && (args.length >= CMDLINE_MAX || !/^[\x20-\x7e]*$/.test(args))) {
      throw fault(
        `Boot source error: The kernel command line is invalid: ${args.length >= CMDLINE_MAX ? 'Command line string too large' : 'String contains an invalid character'}`,
      );
    }
    this.bootSource = {
      kernel_image_path: kernel,
      ...(initrd === undefined ? {} : { initrd_path: initrd }),
      ...(args === undefined ? {} : { boot_args: args }),
    };
    this.kernelHead = head;
    return { status: 204 };
  }

  private async putDrive(b: Record<string, unknown>): Promise<Reply> {
    this.preBoot();
    const d: FakeDrive = {
      drive_id: b.drive_id as string,
      path_on_host: b.path_on_host as string,
      is_root_device: b.is_root_device as boolean,
      is_read_only: b.is_read_only as boolean,
    };
    const pos = this.drives.findIndex((x) => x.drive_id === d.drive_id);
    const hasRoot = this.drives[0]?.is_root_device === true;
    if (d.is_root_device && hasRoot && pos !== 0)
      throw fault('Drive config error: A root block device already exists!');
    if (
      !(await access(d.path_on_host).then(
        () => true,
        () => false,
      ))
    )
      throw fault(`Drive config error: Invalid block device path: ${d.path_on_host}`);
    await openCheck(d.path_on_host, d.is_read_only ? constants.O_RDONLY : constants.O_RDWR).catch((e: unknown) => {
      throw fault(
        `Drive config error: Unable to create the block device: BackingFile(${ioText(e)}, "${d.path_on_host}")`,
      );
    });
    if (pos < 0) {
      if (d.is_root_device) this.drives.unshift(d);
      else this.drives.push(d);
    } else {
      this.drives[pos] = d;
      if (pos !== 0 && d.is_root_device) [this.drives[0], this.drives[pos]] = [d, this.drives[0] as FakeDrive];
    }
    return { status: 204 };
  }

  private async patchDrive(b: Record<string, unknown>): Promise<Reply> {
    this.postBoot();
    const d = this.drives.find((x) => x.drive_id === b.drive_id);
    if (d === undefined) throw fault(`Drive config error: no drive with id ${String(b.drive_id)}`);
    if (typeof b.path_on_host === 'string') {
      await openCheck(b.path_on_host, d.is_read_only ? constants.O_RDONLY : constants.O_RDWR).catch((e: unknown) => {
        throw fault(`Drive config error: Unable to patch the block device: ${ioText(e)}`);
      });
      d.path_on_host = b.path_on_host;
    }
    return { status: 204 };
  }

  private putNet(b: Record<string, unknown>): Reply {
    this.preBoot();
    const n = {
      iface_id: b.iface_id as string,
      host_dev_name: b.host_dev_name as string,
      guest_mac: b.guest_mac as string | undefined,
    };
    const others = this.nets.filter((x) => x.iface_id !== n.iface_id);
    if (n.guest_mac !== undefined && others.some((x) => x.guest_mac?.toLowerCase() === n.guest_mac?.toLowerCase())) {
      throw fault(`Network config error: The guest MAC address ${n.guest_mac} is already in use.`);
    }
    const tapProblem =
      n.host_dev_name.length > IFNAME_MAX
        ? `Invalid TUN/TAP Interface name provided: ${n.host_dev_name}`
        : others.some((x) => x.host_dev_name === n.host_dev_name)
          ? 'Resource busy (os error 16)'
          : this.opts.openTap && !this.opts.openTap(n.host_dev_name)
            ? 'No such device (os error 19)'
            : undefined;
    if (tapProblem !== undefined)
      throw fault(`Network config error: Could not create the network device: Open tap device failed: ${tapProblem}`);
    const i = this.nets.findIndex((x) => x.iface_id === n.iface_id);
    const entry =
      n.guest_mac === undefined
        ? { iface_id: n.iface_id, host_dev_name: n.host_dev_name }
        : { ...n, guest_mac: n.guest_mac };
    if (i >= 0) this.nets.splice(i, 1);
    this.nets.push(entry);
    return { status: 204 };
  }

  private patchNet(b: Record<string, unknown>): Reply {
    this.postBoot();
    if (!this.nets.some((x) => x.iface_id === b.iface_id))
      throw fault(`Network config error: no network interface with id ${String(b.iface_id)}`);
    return { status: 204 };
  }

  private async putVsock(b: Record<string, unknown>): Promise<Reply> {
    this.preBoot();
    const uds = b.uds_path as string;
    // A second PUT replaces the device: firecracker removes the old socket first.
    if (this.vsockServer !== undefined && this.vsock !== undefined) {
      await closeServer(this.vsockServer);
      await rm(this.vsock.uds_path, { force: true });
      this.vsockServer = undefined;
      this.vsock = undefined;
    }
    const server = createNetServer((c) => (this.opts.onVsockConnect ? this.opts.onVsockConnect(c) : c.destroy()));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(
          fault(
            `Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: ${ioText(e)}`,
          ),
        ),
      );
      server.listen(uds, resolve);
    });
    this.vsockServer = server;
    this.vsock = { guest_cid: b.guest_cid as number, uds_path: uds };
    return { status: 204 };
  }

  private async putLogger(b: Record<string, unknown>): Promise<Reply> {
    this.preBoot();
    if (typeof b.log_path === 'string') {
      await openCheck(b.log_path, RW_NONBLOCK).catch((e: unknown) => {
        throw fault(`Logger error: Failed to open target file: ${ioText(e)}`);
      });
    }
    this.logger = b;
    return { status: 204 };
  }

  private async putMetrics(b: Record<string, unknown>): Promise<Reply> {
    this.preBoot();
    const path = b.metrics_path as string;
    await openCheck(path, RW_NONBLOCK).catch((e: unknown) => {
      throw fault(`Metrics error: ${ioText(e)}`);
    });
    if (this.metricsPath !== undefined) throw fault('Metrics error: Reinitialization of metrics not allowed.');
    this.metricsPath = path;
    return { status: 204 };
  }
}

/** The id from the path, checked as firecracker does before it decodes the body. */
function checkedId(id: string | undefined): string {
  if (id === undefined || id === '') throw fault('The ID cannot be empty.');
  if (!/^[\p{L}\p{N}_]+$/u.test(id))
    throw fault('API Resource IDs can only contain alphanumeric characters and underscores.');
  return id;
}

/** The body, once its id field equals the id from the path. */
function idMatch(id: string, body: Record<string, unknown>, field: 'drive_id' | 'iface_id'): Record<string, unknown> {
  if (body[field] === id) return body;
  throw fault(
    field === 'drive_id'
      ? 'The id from the path does not match the id from the body!'
      : `The id from the path [${id}] does not match the id from the body [${String(body[field])}]!`,
  );
}

function closeServer(s: NetServer | HttpServer | undefined): Promise<void> {
  if (s === undefined || !s.listening) return Promise.resolve();
  return new Promise((resolve) => s.close(() => resolve()));
}
