import { badRequest } from '../errors.js';
import { MAX_PAYLOAD } from './protocol.js';
import { id32, MAX_ARGS, noNul, u16 } from './payload-fields.js';
import { PayloadReader, PayloadWriter } from './wire-io.js';

/** EXEC and EXIT payloads (docs/agent-protocol.md). */

const EXEC_PTY = 1;

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
