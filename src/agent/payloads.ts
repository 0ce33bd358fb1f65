import { MAGIC, agentErrorName } from './protocol.js';
import { PayloadReader, PayloadWriter } from './wire-io.js';

/**
 * Payload encoders and decoders for every frame type (docs/agent-protocol.md).
 * Both directions are here: the host client uses one half, the in-process fake
 * agent (test/fakes/agent.ts) the other, and the tests round-trip them. Encoders reject bad input
 * with a badRequest naming the value; decoders reject malformed bytes with an
 * operationFailed naming the payload. EXEC/EXIT, PORTS and the file payloads
 * live in payloads-exec.ts, payloads-ports.ts and payloads-files.ts; this module
 * re-exports them, so callers import every payload from here.
 */

export * from './payloads-exec.js';
export * from './payloads-files.js';
export * from './payloads-identity.js';
export * from './payloads-ports.js';

const MAX_NAME = 64;
const MAX_ERROR_MESSAGE = 1024;

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

// ---- SHUTDOWN (SET_IDENTITY: payloads-identity.ts) ---------------------------------------------------

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
