import { isIPv4, isIPv6 } from 'node:net';
import { badRequest } from '../errors.js';
import { MAGIC, MAX_PAYLOAD, NONE, agentErrorName } from './protocol.js';
import { PayloadReader, PayloadWriter } from './wire-io.js';

/**
 * Payload encoders and decoders for every frame type (docs/agent-protocol.md).
 * Both directions are here: the host client uses one half, the in-process fake
 * agent (test/fakes/agent.ts) the other, and the tests round-trip them. Encoders reject bad input
 * with a badRequest naming the value; decoders reject malformed bytes with an
 * operationFailed naming the payload.
 */

const EXEC_PTY = 1;
const MAX_ARGS = 4096;
const MAX_PATH = 4095;
const MAX_HOSTNAME = 64;
const MAX_ENTROPY = 512;
const MAX_NAME = 64;
const MAX_ERROR_MESSAGE = 1024;
const PORT_ENTRY = 24;

// ---- HELLO ---------------------------------------------------------------

export interface HostHello {
  minVersion: number;
  maxVersion: number;
}

export function encodeHostHello(h: HostHello): Buffer {
  return new PayloadWriter().bytes(MAGIC).u16(h.minVersion).u16(h.maxVersion).finish();
}

export function decodeHostHello(p: Buffer): HostHello {
  const r = new PayloadReader(p, 'HELLO');
  if (!r.bytes(MAGIC.length, 'magic').equals(MAGIC)) r.fail('it does not start with "BANGERAG"');
  const h = { minVersion: r.u16('min_version'), maxVersion: r.u16('max_version') };
  r.end();
  return h;
}

export interface AgentHello {
  version: number;
  maxPayload: number;
  name: string;
}

export function encodeAgentHello(h: AgentHello): Buffer {
  return new PayloadWriter().bytes(MAGIC).u16(h.version).u32(h.maxPayload).bytes(Buffer.from(h.name, 'utf8')).finish();
}

export function decodeAgentHello(p: Buffer): AgentHello {
  const r = new PayloadReader(p, 'HELLO');
  if (!r.bytes(MAGIC.length, 'magic').equals(MAGIC)) r.fail('it does not start with "BANGERAG"');
  const version = r.u16('version');
  const maxPayload = r.u32('max_payload');
  const name = r.rest();
  if (name.length > MAX_NAME) r.fail(`agent name of ${name.length} bytes`);
  return { version, maxPayload, name: name.toString('utf8') };
}

// ---- ERROR ----------------------------------------------------------------

export interface AgentErrorPayload {
  code: number;
  errno: number;
  message: string;
}

export function encodeError(e: AgentErrorPayload): Buffer {
  const msg = Buffer.from(e.message, 'utf8').subarray(0, MAX_ERROR_MESSAGE);
  return new PayloadWriter().u16(e.code).u32(e.errno).bytes(msg).finish();
}

export function decodeError(p: Buffer): AgentErrorPayload {
  const r = new PayloadReader(p, 'ERROR');
  const code = r.u16('code');
  const errno = r.u32('errno');
  const msg = r.rest();
  if (msg.length > MAX_ERROR_MESSAGE) r.fail(`message of ${msg.length} bytes`);
  // The message comes from the guest: keep it printable and on one line.
  const message = msg.toString('utf8').replace(/[\x00-\x1f\x7f]/g, ' ');
  return { code, errno, message: message || agentErrorName(code) };
}

// ---- small fixed payloads ---------------------------------------------------

export function encodeU32(v: number): Buffer {
  return new PayloadWriter().u32(v).finish();
}

export function decodeU32(p: Buffer, what: string): number {
  const r = new PayloadReader(p, what);
  const v = r.u32('value');
  r.end();
  return v;
}

export function encodeResize(rows: number, cols: number): Buffer {
  return new PayloadWriter().u16(rows).u16(cols).finish();
}

export function decodeResize(p: Buffer): { rows: number; cols: number } {
  const r = new PayloadReader(p, 'RESIZE');
  const v = { rows: r.u16('rows'), cols: r.u16('cols') };
  r.end();
  return v;
}

export function decodeEmpty(p: Buffer, what: string): void {
  new PayloadReader(p, what).end();
}

// ---- HEALTH -----------------------------------------------------------------

export interface AgentHealth {
  uptimeMs: number;
  sessions: number;
  name: string;
}

export function encodeHealthReply(h: AgentHealth): Buffer {
  return new PayloadWriter().u64(h.uptimeMs).u32(h.sessions).bytes(Buffer.from(h.name, 'utf8')).finish();
}

export function decodeHealthReply(p: Buffer): AgentHealth {
  const r = new PayloadReader(p, 'HEALTH_REPLY');
  const uptimeMs = r.u64('uptime_ms');
  const sessions = r.u32('sessions');
  const name = r.rest();
  if (name.length > MAX_NAME) r.fail(`agent name of ${name.length} bytes`);
  return { uptimeMs, sessions, name: name.toString('utf8') };
}

// ---- EXEC -----------------------------------------------------------------

export interface ExecSpec {
  argv: readonly string[];
  /** Exactly the command's environment. */
  env?: Readonly<Record<string, string>>;
  /** Empty or absent: the agent's working directory. */
  cwd?: string;
  uid?: number;
  /** Defaults to uid. */
  gid?: number;
  /** Allocate a terminal of this size (0 × 0 = the default size). */
  pty?: { rows: number; cols: number };
}

function noNul(value: string, what: string): Buffer {
  const b = Buffer.from(value, 'utf8');
  if (b.includes(0)) throw badRequest(`${what} ${JSON.stringify(value)} contains a NUL byte`);
  return b;
}

function id32(v: number | undefined, what: string): number {
  if (v === undefined) return NONE;
  if (!Number.isInteger(v) || v < 0 || v >= NONE) throw badRequest(`${what} ${v} is not a valid id`);
  return v;
}

function u16(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw badRequest(`${what} ${v} is not within 0..65535`);
  return v;
}

export function encodeExec(spec: ExecSpec): Buffer {
  const { argv } = spec;
  if (argv.length < 1 || argv.length > MAX_ARGS)
    throw badRequest(`argv must have 1..${MAX_ARGS} entries, got ${argv.length}`);
  if (!argv[0]) throw badRequest('argv[0] is empty', 'name the program to run');
  const env = Object.entries(spec.env ?? {});
  if (env.length > MAX_ARGS) throw badRequest(`env has ${env.length} entries, more than ${MAX_ARGS}`);
  const w = new PayloadWriter()
    .u32(spec.pty ? EXEC_PTY : 0)
    .u32(id32(spec.uid, 'uid'))
    .u32(id32(spec.gid, 'gid'))
    .u16(spec.pty ? u16(spec.pty.rows, 'rows') : 0)
    .u16(spec.pty ? u16(spec.pty.cols, 'cols') : 0)
    .str(noNul(spec.cwd ?? '', 'cwd'))
    .u32(argv.length);
  argv.forEach((a, i) => w.str(noNul(a, `argv[${i}]`)));
  w.u32(env.length);
  for (const [name, value] of env) {
    if (!name || name.includes('='))
      throw badRequest(`environment variable name ${JSON.stringify(name)} is empty or contains "="`);
    w.str(noNul(`${name}=${value}`, `environment variable ${name}`));
  }
  if (w.length > MAX_PAYLOAD) {
    throw badRequest(`the command line and environment take ${w.length} bytes, more than the agent's ${MAX_PAYLOAD}`);
  }
  return w.finish();
}

/** The agent's view of an EXEC payload (the fake agent uses it). */
export interface ExecRequest {
  pty: boolean;
  uid: number;
  gid: number;
  rows: number;
  cols: number;
  cwd: string;
  argv: string[];
  env: string[];
}

export function decodeExec(p: Buffer): ExecRequest {
  const r = new PayloadReader(p, 'EXEC');
  const flags = r.u32('flags');
  if (flags & ~EXEC_PTY) r.fail(`flags 0x${flags.toString(16)} has unknown bits`);
  const req = {
    pty: (flags & EXEC_PTY) !== 0,
    uid: r.u32('uid'),
    gid: r.u32('gid'),
    rows: r.u16('rows'),
    cols: r.u16('cols'),
  };
  const text = (b: Buffer, what: string): string => {
    if (b.includes(0)) r.fail(`${what} contains a NUL byte`);
    return b.toString('utf8');
  };
  const cwd = text(r.str('cwd'), 'cwd');
  const argc = r.u32('argc');
  if (argc < 1 || argc > MAX_ARGS) r.fail(`argc ${argc} is not within 1..${MAX_ARGS}`);
  const argv = Array.from({ length: argc }, (_, i) => text(r.str(`argv[${i}]`), `argv[${i}]`));
  const envc = r.u32('envc');
  if (envc > MAX_ARGS) r.fail(`envc ${envc} is more than ${MAX_ARGS}`);
  const env = Array.from({ length: envc }, (_, i) => text(r.str(`env[${i}]`), `env[${i}]`));
  r.end();
  if (!argv[0]) r.fail('argv[0] is empty');
  for (const [i, e] of env.entries()) if (e.indexOf('=') < 1) r.fail(`env[${i}] is not NAME=value`);
  return { ...req, cwd, argv, env };
}

export type ExitStatus = { kind: 'exited'; code: number } | { kind: 'signaled'; signal: number };

export function encodeExit(e: ExitStatus): Buffer {
  return new PayloadWriter()
    .u8(e.kind === 'exited' ? 0 : 1)
    .u32(e.kind === 'exited' ? e.code : e.signal)
    .finish();
}

export function decodeExit(p: Buffer): ExitStatus {
  const r = new PayloadReader(p, 'EXIT');
  const kind = r.u8('kind');
  const value = r.u32('value');
  r.end();
  if (kind === 0) {
    if (value > 255) r.fail(`exit status ${value} is more than 255`);
    return { kind: 'exited', code: value };
  }
  if (kind === 1) {
    if (value < 1 || value > 64) r.fail(`signal ${value} is not within 1..64`);
    return { kind: 'signaled', signal: value };
  }
  return r.fail(`exit kind ${kind} is neither 0 nor 1`);
}

// ---- PORTS ----------------------------------------------------------------

export interface ListeningPort {
  protocol: 'tcp' | 'udp';
  family: 4 | 6;
  address: string;
  port: number;
  uid: number;
}

export interface PortsReply {
  truncated: boolean;
  ports: ListeningPort[];
}

function formatIPv6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  // The longest run of two or more zero groups becomes "::" (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function parseIPv6(s: string): Buffer {
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function encodePortsReply(reply: PortsReply): Buffer {
  const w = new PayloadWriter().u8(reply.truncated ? 1 : 0).u32(reply.ports.length);
  for (const p of reply.ports) {
    const addr = Buffer.alloc(16);
    if (p.family === 4 && isIPv4(p.address)) Buffer.from(p.address.split('.').map(Number)).copy(addr);
    else if (p.family === 6 && isIPv6(p.address)) parseIPv6(p.address).copy(addr);
    else throw badRequest(`address ${p.address} is not IPv${p.family}`);
    w.u8(p.protocol === 'tcp' ? 6 : 17)
      .u8(p.family)
      .u16(p.port)
      .bytes(addr)
      .u32(p.uid);
  }
  return w.finish();
}

export function decodePortsReply(p: Buffer): PortsReply {
  const r = new PayloadReader(p, 'PORTS_REPLY');
  const truncated = r.u8('truncated');
  if (truncated > 1) r.fail(`truncated flag ${truncated}`);
  const count = r.u32('count');
  if (count * PORT_ENTRY !== r.left) r.fail(`${count} entries do not fill ${r.left} bytes`);
  const ports: ListeningPort[] = [];
  for (let i = 0; i < count; i++) {
    const proto = r.u8('protocol');
    const family = r.u8('family');
    const port = r.u16('port');
    const addr = r.bytes(16, 'address');
    const uid = r.u32('uid');
    if (proto !== 6 && proto !== 17) r.fail(`protocol ${proto} of entry ${i}`);
    if (family !== 4 && family !== 6) r.fail(`family ${family} of entry ${i}`);
    const address = family === 4 ? Array.from(addr.subarray(0, 4)).join('.') : formatIPv6(addr);
    ports.push({ protocol: proto === 6 ? 'tcp' : 'udp', family: family === 4 ? 4 : 6, address, port, uid });
  }
  return { truncated: truncated === 1, ports };
}

// ---- files ------------------------------------------------------------------

export interface FilePutHeader {
  mode: number;
  uid?: number;
  gid?: number;
  size: number;
  path: string;
}

function guestPath(path: string): Buffer {
  const b = noNul(path, 'guest path');
  if (!path.startsWith('/')) throw badRequest(`guest path ${JSON.stringify(path)} is not absolute`);
  if (b.length > MAX_PATH) throw badRequest(`guest path of ${b.length} bytes is longer than ${MAX_PATH}`);
  return b;
}

export function encodeFilePut(h: FilePutHeader): Buffer {
  if (!Number.isInteger(h.mode) || h.mode < 0 || h.mode > 0o7777)
    throw badRequest(`file mode ${h.mode} is not within 0..07777`);
  if (!Number.isSafeInteger(h.size) || h.size < 0) throw badRequest(`file size ${h.size} is not a byte count`);
  return new PayloadWriter()
    .u32(h.mode)
    .u32(id32(h.uid, 'uid'))
    .u32(id32(h.gid, 'gid'))
    .u64(h.size)
    .str(guestPath(h.path))
    .finish();
}

export function decodeFilePut(p: Buffer): Required<FilePutHeader> {
  const r = new PayloadReader(p, 'FILE_PUT');
  const h = { mode: r.u32('mode'), uid: r.u32('uid'), gid: r.u32('gid'), size: r.u64('size'), path: r.str('path') };
  r.end();
  if (h.mode > 0o7777) r.fail(`mode 0${h.mode.toString(8)} is more than permission bits`);
  if (!h.path.length || h.path.length > MAX_PATH || h.path.includes(0) || h.path[0] !== 0x2f)
    r.fail('path is not an absolute path');
  return { ...h, path: h.path.toString('utf8') };
}

export function encodeFileGet(path: string): Buffer {
  return new PayloadWriter().str(guestPath(path)).finish();
}

export function decodeFileGet(p: Buffer): string {
  const r = new PayloadReader(p, 'FILE_GET');
  const path = r.str('path');
  r.end();
  if (!path.length || path.length > MAX_PATH || path.includes(0) || path[0] !== 0x2f)
    r.fail('path is not an absolute path');
  return path.toString('utf8');
}

export interface FileInfo {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeS: number;
}

export function encodeFileInfo(i: FileInfo): Buffer {
  return new PayloadWriter().u32(i.mode).u32(i.uid).u32(i.gid).u64(i.size).i64(i.mtimeS).finish();
}

export function decodeFileInfo(p: Buffer): FileInfo {
  const r = new PayloadReader(p, 'FILE_INFO');
  const i = { mode: r.u32('mode'), uid: r.u32('uid'), gid: r.u32('gid'), size: r.u64('size'), mtimeS: r.i64('mtime') };
  r.end();
  if (i.mode > 0o7777) r.fail(`mode 0${i.mode.toString(8)} is more than permission bits`);
  return i;
}

// ---- SHUTDOWN, SET_IDENTITY ---------------------------------------------------

export type ShutdownAction = 'poweroff' | 'reboot';

export function encodeShutdown(action: ShutdownAction): Buffer {
  return new PayloadWriter().u8(action === 'reboot' ? 1 : 0).finish();
}

export function decodeShutdown(p: Buffer): ShutdownAction {
  const r = new PayloadReader(p, 'SHUTDOWN');
  const a = r.u8('action');
  r.end();
  if (a > 1) r.fail(`action ${a}`);
  return a === 1 ? 'reboot' : 'poweroff';
}

export interface Identity {
  hostname?: string;
  /** Random bytes mixed (and credited) into the guest's entropy pool. */
  entropy?: Buffer;
}

const HOSTNAME = /^[A-Za-z0-9.-]{1,64}$/;

export function encodeIdentity(id: Identity): Buffer {
  const w = new PayloadWriter();
  if (id.hostname !== undefined) {
    if (!HOSTNAME.test(id.hostname)) {
      throw badRequest(
        `hostname ${JSON.stringify(id.hostname)} must be 1..${MAX_HOSTNAME} characters of A-Z a-z 0-9 . -`,
      );
    }
    w.u8(1).u16(id.hostname.length).bytes(Buffer.from(id.hostname, 'latin1'));
  }
  if (id.entropy !== undefined) {
    if (id.entropy.length < 1 || id.entropy.length > MAX_ENTROPY) {
      throw badRequest(`entropy of ${id.entropy.length} bytes is not within 1..${MAX_ENTROPY}`);
    }
    w.u8(2).u16(id.entropy.length).bytes(id.entropy);
  }
  return w.finish();
}

export function decodeIdentity(p: Buffer): Identity {
  const r = new PayloadReader(p, 'SET_IDENTITY');
  const id: Identity = {};
  while (r.left) {
    const tag = r.u8('tag');
    const value = r.bytes(r.u16('length'), 'value');
    if (tag === 1) {
      const h = value.toString('latin1');
      if (!HOSTNAME.test(h)) r.fail(`hostname ${JSON.stringify(h)}`);
      id.hostname = h;
    } else if (tag === 2) {
      if (value.length < 1 || value.length > MAX_ENTROPY) r.fail(`entropy of ${value.length} bytes`);
      id.entropy = Buffer.from(value);
    } else {
      r.fail(`record tag ${tag} is unknown`);
    }
  }
  return id;
}
