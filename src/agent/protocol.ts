/**
 * Constants of the guest agent protocol, version 2 (docs/agent-protocol.md).
 * guest-src/banger-agent/wire.h holds the same numbers for the C side.
 */
export const PROTOCOL_VERSION = 2;
export const HEADER_SIZE = 9;
export const MAX_PAYLOAD = 131072;
export const WINDOW_INITIAL = 131072;
export const DATA_CHUNK = 32768;
export const MAX_SESSIONS = 64;
export const MAGIC = Buffer.from('BANGERAG', 'latin1');
/** "Not given" for uid/gid fields. */
export const NONE = 0xffffffff;

export const FrameType = {
  HELLO: 0x01,
  ERROR: 0x02,
  OK: 0x03,
  WINDOW: 0x04,
  ABORT: 0x05,
  HEALTH: 0x10,
  HEALTH_REPLY: 0x11,
  EXEC: 0x20,
  EXEC_STARTED: 0x21,
  STDIN: 0x22,
  STDOUT: 0x23,
  STDERR: 0x24,
  EXIT: 0x25,
  SIGNAL: 0x26,
  RESIZE: 0x27,
  PORTS: 0x30,
  PORTS_REPLY: 0x31,
  FILE_PUT: 0x40,
  FILE_GET: 0x41,
  FILE_INFO: 0x42,
  FILE_DATA: 0x43,
  FILE_LIST: 0x44,
  FILE_LIST_REPLY: 0x45,
  SHUTDOWN: 0x50,
  SET_IDENTITY: 0x60,
} as const;
export type FrameTypeName = keyof typeof FrameType;

const typeNames = new Map<number, FrameTypeName>(
  (Object.entries(FrameType) as [FrameTypeName, number][]).map(([name, value]) => [value, name]),
);

/** "STDOUT" for 0x23, "0x99" for a type this side does not know. */
export function frameTypeName(type: number): string {
  return typeNames.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

/** Frame types the agent may send to the host. */
export const AGENT_FRAME_TYPES: ReadonlySet<number> = new Set([
  FrameType.HELLO,
  FrameType.ERROR,
  FrameType.OK,
  FrameType.WINDOW,
  FrameType.HEALTH_REPLY,
  FrameType.EXEC_STARTED,
  FrameType.STDOUT,
  FrameType.STDERR,
  FrameType.EXIT,
  FrameType.PORTS_REPLY,
  FrameType.FILE_INFO,
  FrameType.FILE_DATA,
  FrameType.FILE_LIST_REPLY,
]);

export const AgentErrorCode = {
  protocol: 1,
  version: 2,
  unknown_type: 3,
  bad_request: 4,
  too_many_sessions: 5,
  system: 6,
  aborted: 7,
} as const;
export type AgentErrorName = keyof typeof AgentErrorCode;

const errorNames = new Map<number, AgentErrorName>(
  (Object.entries(AgentErrorCode) as [AgentErrorName, number][]).map(([name, value]) => [value, name]),
);

export function agentErrorName(code: number): string {
  return errorNames.get(code) ?? `error ${code}`;
}

export interface Frame {
  type: number;
  session: number;
  payload: Buffer;
}
