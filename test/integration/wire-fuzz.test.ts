/**
 * Integration (no network, no VMs): throws random, truncated, oversized,
 * binary and malformed HTTP requests (docs/http-api.md) at a real bangerd's socket for a
 * bounded time and count. Every connection must end (answered or closed), no
 * answer may be anything but a well-formed HTTP response carrying one result or error frame, the daemon must
 * stay up and serve normal requests afterwards, its RSS must stay under a
 * generous bound, and junk must leave no rows in the operations table.
 * BANGER_FUZZ_SEED=<n> replays a run (the seed is printed as a diagnostic).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { ERROR_CODES } from '../../src/errors.js';
import { TestHome } from '../helpers/home.js';
import { dial, parseResponse, post } from '../helpers/http-wire.js';

const MAX_CASES = 600;
const MAX_RUN_MS = 15_000;
const CONCURRENCY = 8;
/** Longer than the daemon's request timeout (10 s), so a silent client is always closed by the daemon first. */
const CONNECTION_DEADLINE_MS = 20_000;
const MiB = 1024 * 1024;
/** Generous: an idle daemon is well under 100 MiB; the quadratic framing reached ~1 GB on one 100 MB line. */
const MAX_RSS_BYTES = 400 * MiB;

let home: TestHome;
let socket: string;
let pid: number;
let version: string;

before(async () => {
  home = new TestHome('banger-wire-');
  const r = await home.banger(['kernel', 'list']);
  assert.equal(r.code, 0, r.stderr);
  socket = join(home.runtimeDir, 'bangerd.sock');
  pid = Number(readFileSync(join(home.runtimeDir, 'bangerd.pid'), 'utf8').trim());
  const status = await talk({
    bytes: [post({ method: 'daemon.status', params: {}, version: 'any' })],
    expect: 'answer',
    end: false,
  });
  version = (status.lines[0] as { result: { version: string } }).result.version;
});

after(async () => {
  await home.cleanup();
});

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  /** Written in order, each as its own write. */
  bytes: (string | Buffer)[];
  /** 'answer': a complete request (or one the daemon must refuse) was sent, so a response must come; 'either': a response or a plain close. */
  expect: 'answer' | 'either';
  /** Half-close after writing (the daemon sees EOF), else wait for the daemon. */
  end: boolean;
  /** A chunked body of this many bytes (in 64 KiB chunks, following backpressure). */
  flood?: number;
  /** The request names a real method with a well-formed envelope, so it may be recorded as an operation. */
  known?: boolean;
}

interface Outcome {
  lines: unknown[];
  status: number;
  malformed: boolean;
  closed: boolean;
  raw: string;
}

function generator(rand: () => number): () => Case {
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
  const text = (n: number): string => Array.from({ length: n }, () => String.fromCharCode(32 + int(95))).join('');
  // Read-only methods only: nothing here may change state (never daemon.stop).
  const methods = [
    'vm.list',
    'kernel.list',
    'image.list',
    'vm.show',
    'kernel.show',
    'daemon.status',
    'no.such',
    '',
    'vm.list\u0000',
  ];
  const valid = (): { method: string; params: unknown; version: string } => ({
    method: pick(['vm.list', 'kernel.list', 'image.list']),
    params: {},
    version,
  });
  const junkValue = (): unknown =>
    pick<unknown>([null, 0, -1, 1e308, true, 'x', '', [], [1, [2]], {}, { a: { b: null } }, text(20)]);
  const cutAt = (b: Buffer): Buffer => b.subarray(0, int(b.length));
  const kinds: (() => Case)[] = [
    // Not HTTP at all.
    () => ({
      bytes: [Buffer.concat([bytes(int(4096)), Buffer.from('\r\n\r\n')])],
      expect: 'either',
      end: rand() < 0.5,
    }),
    () => ({ bytes: [bytes(1 + int(2048))], expect: 'either', end: true }),
    // A valid request cut short.
    () => ({ bytes: [cutAt(post(valid()))], expect: 'either', end: rand() < 0.5 }),
    // A valid head, a junk JSON body.
    () => ({ bytes: [post(valid(), {}, JSON.stringify(junkValue()))], expect: 'answer', end: false, known: true }),
    // A valid head, a binary body.
    () => ({ bytes: [post(valid(), {}, bytes(int(512)))], expect: 'answer', end: false, known: true }),
    // Junk method names, versions, op ids and params.
    () => ({
      bytes: [
        post({
          method: encodeURIComponent(pick(methods)),
          params: { ref: text(int(50)), [text(5)]: junkValue() },
          version: pick([version, 'old', '']),
          op_id: pick([undefined, text(8), 'op-x', '']),
        }),
      ],
      expect: 'answer',
      end: false,
      known: true,
    }),
    // Deeply nested JSON.
    () => ({ bytes: [post(valid(), {}, '['.repeat(1 + int(200_000)))], expect: 'answer', end: false, known: true }),
    // A body over the limit, declared.
    () => ({ bytes: [post(valid(), {}, `{"x":"${'a'.repeat(MiB + int(64 * 1024))}"}`)], expect: 'answer', end: false }),
    // A valid request in small pieces.
    () => {
      const req = post(valid());
      const cuts = [0, ...Array.from({ length: 4 }, () => int(req.length)).sort((a, b) => a - b), req.length];
      return {
        bytes: cuts
          .slice(1)
          .map((c, i) => req.subarray(cuts[i], c))
          .filter((b) => b.length > 0),
        expect: 'answer',
        end: false,
        known: true,
      };
    },
    // Bad header bytes, or an odd verb or target.
    () => ({
      bytes: [
        Buffer.concat([
          Buffer.from('POST /v1/vm.list HTTP/1.1\r\nbanger-version: '),
          bytes(1 + int(8)),
          Buffer.from('\r\ncontent-length: 2\r\n\r\n{}'),
        ]),
      ],
      expect: 'either',
      end: false,
    }),
    () => ({
      bytes: [
        `${pick(['GET', 'PUT', 'DELETE', 'POST', 'FOO'])} ${pick(['/', '/v1/', '/v1/%zz', '/v1/vm.list?x=1', '*', `/${text(30)}`])} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n`,
      ],
      expect: 'answer',
      end: false,
    }),
    // A stream method upgraded to something else, or not upgraded.
    () => ({
      bytes: [
        `POST /v1/vm.exec HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: ${pick(['websocket', 'h2c', 'banger-stream'])}\r\nbanger-version: old\r\n\r\n`,
      ],
      expect: 'answer',
      end: false,
    }),
    // Headers over the limit.
    () => ({
      bytes: [`POST /v1/vm.list HTTP/1.1\r\nx-pad: ${'a'.repeat(20_000 + int(50_000))}\r\n\r\n`],
      expect: 'answer',
      end: false,
    }),
    // A request with an Origin.
    () => ({ bytes: [post(valid(), { origin: 'https://evil.example' })], expect: 'answer', end: false }),
    () => ({ bytes: ['\r\n\r\n   \r\n'], expect: 'either', end: true }),
  ];
  let n = 0;
  return () => {
    n++;
    // A few slow cases at fixed points: a chunked body of 64 MiB (the daemon must
    // stop it at 1 MiB), and silent clients the daemon must time out (10 s).
    if (n === 3 || n === 40)
      return {
        bytes: [`POST /v1/vm.list HTTP/1.1\r\nbanger-version: ${version}\r\ntransfer-encoding: chunked\r\n\r\n`],
        // The 413 may be lost in the reset of a connection still being written to.
        expect: 'either',
        end: false,
        flood: 64 * MiB,
      };
    if (n === 5 || n === 60) return { bytes: ['POST /v1/vm.li'], expect: 'answer', end: false };
    if (n === 7) return { bytes: [cutAt(post(valid()))], expect: 'either', end: false };
    return pick(kinds)();
  };
}

/** One connection: writes the case, reads the response until the daemon closes it (or the deadline). */
function talk(c: Case): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = dial(socket);
    const parts: Buffer[] = [];
    let size = 0;
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      const raw = Buffer.concat(parts);
      resolve({ ...parseResponse(raw), closed, raw: raw.toString('latin1').slice(0, 300) });
    };
    const timer = setTimeout(() => {
      sock.destroy();
      finish();
    }, CONNECTION_DEADLINE_MS);
    sock.on('data', (d: Buffer) => {
      if (size < 4 * MiB) parts.push(d);
      size += d.length;
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      closed = true;
      finish();
    });
    sock.on('connect', () => {
      for (const b of c.bytes) sock.write(b);
      if (c.flood !== undefined) {
        const chunk = Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(64 * 1024, 0x61), Buffer.from('\r\n')]);
        let left = c.flood;
        const pump = (): void => {
          while (left > 0 && !sock.destroyed) {
            left -= 64 * 1024;
            if (!sock.write(chunk)) return void sock.once('drain', pump);
          }
        };
        pump();
      }
      if (c.end) sock.end();
    });
  });
}

/** The daemon's /proc status, or undefined once it is gone (a zombie counts as gone: its parent is init). */
function procStatus(): string | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return /^State:\s+Z/m.test(status) ? undefined : status;
  } catch {
    return undefined;
  }
}

const alive = (): boolean => procStatus() !== undefined;

/** Resident set size in bytes; 0 once the daemon is gone. */
function rss(): number {
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(procStatus() ?? '')?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

test(
  'random, truncated, oversized and binary request lines: every connection ends, the daemon stays up with bounded memory',
  { timeout: 120_000 },
  async (t) => {
    const seed = Number(process.env.BANGER_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    t.diagnostic(`BANGER_FUZZ_SEED=${seed}`);
    const next = generator(prng(seed));
    const rssBefore = rss();
    let peak = rssBefore;
    const failures: string[] = [];
    let sent = 0;
    let known = 0;
    const started = Date.now();
    const worker = async (): Promise<void> => {
      while (sent < MAX_CASES && Date.now() - started < MAX_RUN_MS && failures.length < 5) {
        const c = next();
        sent++;
        if (c.known) known++;
        const out = await talk(c);
        peak = Math.max(peak, rss());
        const what = `${JSON.stringify(c.bytes.map((b) => b.toString().slice(0, 200)))}${c.flood ? ` + ${c.flood} bytes` : ''} → ${out.raw}`;
        if (!out.closed) failures.push(`not closed within ${CONNECTION_DEADLINE_MS} ms: ${what}`);
        if (out.malformed) failures.push(`not a well-formed HTTP response: ${what}`);
        if (out.lines.length > 1) failures.push(`more than one frame: ${what}`);
        if (out.status !== 0 && out.lines.length === 0) failures.push(`a response without a frame: ${what}`);
        const last = out.lines.at(-1) as
          { result?: unknown; error?: { code?: string; message?: string; op_id?: string } } | undefined;
        if (c.expect === 'answer' && last === undefined) failures.push(`no answer: ${what}`);
        if (last !== undefined) {
          const wellFormed =
            'result' in last ||
            (last.error !== undefined &&
              (ERROR_CODES as readonly string[]).includes(last.error.code ?? '') &&
              typeof last.error.message === 'string' &&
              typeof last.error.op_id === 'string');
          if (!wellFormed) failures.push(`malformed answer: ${what}`);
        }
        if (!alive()) failures.push(`daemon died after: ${what}`);
        if (!alive()) break;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    t.diagnostic(
      `${sent} connections in ${Date.now() - started} ms; RSS ${Math.round(rssBefore / MiB)} MiB before, peak ${Math.round(peak / MiB)} MiB`,
    );

    assert.deepEqual(failures, []);
    assert.ok(sent >= 50, `only ${sent} connections were made`);
    assert.ok(alive(), 'the daemon is still running');
    assert.equal(Number(readFileSync(join(home.runtimeDir, 'bangerd.pid'), 'utf8').trim()), pid, 'the same daemon');
    assert.ok(peak < MAX_RSS_BYTES, `daemon RSS peaked at ${Math.round(peak / MiB)} MiB`);

    // Normal requests still work, through the CLI.
    for (const args of [
      ['kernel', 'list'],
      ['vm', 'list'],
    ]) {
      const r = await home.banger(args, 30_000);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    assert.equal(
      Number(readFileSync(join(home.runtimeDir, 'bangerd.pid'), 'utf8').trim()),
      pid,
      'the CLI did not have to start a new daemon',
    );

    // Junk never became an operation: only requests for a real method can be recorded.
    const db = new Database(join(home.stateDir, 'banger.db'), { readonly: true, fileMustExist: true });
    try {
      const rows = (db.prepare('SELECT count(*) AS n FROM operations').get() as { n: number }).n;
      assert.ok(rows <= known + 3, `${rows} operations recorded for ${known} requests naming a method (of ${sent})`);
    } finally {
      db.close();
    }
  },
);
