/**
 * Integration (no VM, no network): throws random, truncated, oversized and
 * mutated frames at both ends of the agent protocol for a bounded time
 * (about 15 s, at most a few hundred rounds) and checks that every one ends
 * in an error or a clean exit — never a hang, a crash or a sanitizer report.
 *
 * - the TypeScript FrameDecoder and AgentClient, fed hostile agent output;
 * - the C agent (dist/guest/banger-agent-host, built with ASan and UBSan)
 *   over --stdio: after any input and the end of its stdin it must exit 0,
 *   or 2 after a fatal protocol error, and everything it wrote must be whole,
 *   well-formed frames, with an ERROR on session 0 when it exited 2;
 * - the C agent with --serial (virtio-serial semantics): it must survive
 *   anything and answer a new HELLO + HEALTH afterwards.
 *
 * As root the agent runs as nobody, so mutated EXEC or FILE_PUT frames cannot
 * touch the host. Failures print the seed (BANGER_FUZZ_SEED=... repeats a run)
 * and save the input that failed.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AppError } from '../../src/errors.js';
import { AgentClient } from '../../src/agent/client.js';
import { encodeFrame, FrameDecoder } from '../../src/agent/codec.js';
import { duplexPair } from '../../src/agent/duplex-pair.js';
import * as P from '../../src/agent/payloads.js';
import { FrameType, HEADER_SIZE, MAX_PAYLOAD, PROTOCOL_VERSION, type Frame } from '../../src/agent/protocol.js';
import { AGENT_HOST, startHostAgent } from '../helpers/agent-host.js';
import { requirements } from '../helpers/requirements.js';

const skip = requirements(process.env.BANGER_SKIP_FUZZ ? ['BANGER_SKIP_FUZZ unset'] : []);
const skipC = skip || requirements(existsSync(AGENT_HOST) ? [] : [AGENT_HOST], 'run npm run build');
const seed = Number(process.env.BANGER_FUZZ_SEED ?? Date.now() % 2 ** 31);
const asNobody = process.getuid?.() === 0 ? 65534 : undefined;
/** BANGER_FUZZ_SCALE=10 fuzzes ten times longer (by hand, not in CI). */
const scale = Number(process.env.BANGER_FUZZ_SCALE ?? 1);

/** mulberry32: small, seedable, good enough to pick mutations. */
function rng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function xor(b: Buffer, i: number, v: number): void {
  b.writeUInt8((b.readUInt8(i) ^ v) & 0xff, i);
}

class Fuzz {
  private readonly r: () => number;
  constructor(s: number) {
    this.r = rng(s);
  }
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(256)));
  }

  /** One of the ways a frame goes wrong. */
  mutate(frame: Buffer): Buffer {
    const b = Buffer.from(frame);
    switch (this.int(8)) {
      case 0: // flip a few bytes anywhere
        for (let k = 1 + this.int(4); k > 0 && b.length; k--) xor(b, this.int(b.length), 1 + this.int(255));
        return b;
      case 1: // cut short
        return b.subarray(0, this.int(b.length));
      case 2: // a length beyond the maximum
        b.writeUInt32BE(MAX_PAYLOAD + 1 + this.int(2 ** 31), 0);
        return b;
      case 3: // a length that disagrees with the payload
        b.writeUInt32BE(Math.max(0, b.length - HEADER_SIZE + this.int(64) - 32), 0);
        return b;
      case 4: // another type
        b[8] = this.int(256);
        return b;
      case 5: // another session
        b.writeUInt32BE(this.pick([0, 1, 3, 7, 0xffffffff, this.int(2 ** 32)]), 4);
        return b;
      case 6: // noise
        return this.bytes(this.int(300));
      default: // a payload byte changed, header intact
        if (b.length > HEADER_SIZE) xor(b, HEADER_SIZE + this.int(b.length - HEADER_SIZE), 1 + this.int(255));
        return b;
    }
  }
}

const f = (type: number, session: number, payload?: Buffer | string): Buffer =>
  encodeFrame(type, session, typeof payload === 'string' ? Buffer.from(payload) : payload);
const u32 = (v: number): Buffer => P.encodeU32(v);
const HELLO = f(FrameType.HELLO, 0, P.encodeHostHello({ minVersion: 2, maxVersion: 2 }));

/** Valid host frames the mutations start from. */
function hostCorpus(dir: string): Buffer[] {
  return [
    f(FrameType.HEALTH, 1),
    f(FrameType.PORTS, 2),
    f(FrameType.EXEC, 3, P.encodeExec({ argv: ['/bin/true', 'x'], env: { A: 'b' }, cwd: '/' })),
    f(FrameType.EXEC, 4, P.encodeExec({ argv: ['/nonexistent/banger-fuzz'], pty: { rows: 10, cols: 20 } })),
    f(FrameType.STDIN, 3, 'abc'),
    f(FrameType.STDIN, 3),
    f(FrameType.WINDOW, 3, u32(100)),
    f(FrameType.SIGNAL, 3, u32(15)),
    f(FrameType.RESIZE, 4, P.encodeResize(30, 90)),
    f(FrameType.ABORT, 3),
    f(FrameType.FILE_GET, 5, P.encodeFileGet('/nonexistent/banger-fuzz')),
    f(FrameType.FILE_GET, 6, P.encodeFileGet(join(dir, 'readable'))),
    f(FrameType.FILE_PUT, 7, P.encodeFilePut({ mode: 0o600, size: 3, path: join(dir, 'put') })),
    f(FrameType.FILE_DATA, 7, 'abc'),
    f(FrameType.FILE_DATA, 7),
    f(FrameType.SET_IDENTITY, 8, P.encodeIdentity({ hostname: 'fuzz', entropy: Buffer.alloc(8, 1) })),
    f(FrameType.FILE_LIST, 10, P.encodeFileList(dir, 3)),
    f(FrameType.FILE_LIST, 11, P.encodeFileList('/nonexistent/banger-fuzz', 1)),
    f(0x77, 9, 'x'),
    HELLO,
  ];
}

function hostInput(z: Fuzz, corpus: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (let n = 1 + z.int(12); n > 0; n--) {
    const frame = z.pick(corpus);
    parts.push(z.chance(0.7) ? z.mutate(frame) : frame);
  }
  return Buffer.concat(parts);
}

function saveFailure(name: string, input: Buffer): string {
  const path = join(mkdtempSync(join(tmpdir(), 'banger-fuzz-')), name);
  writeFileSync(path, input);
  return path;
}

/** Runs fn for about ms, at most max rounds. */
async function forAbout(ms: number, max: number, fn: (round: number) => Promise<void> | void): Promise<number> {
  ms *= scale;
  max *= scale;
  const end = Date.now() + ms;
  let round = 0;
  while (round < max && Date.now() < end) await fn(round++);
  return round;
}

test(
  'fuzz: the TypeScript decoder and client turn hostile agent output into errors',
  { skip, timeout: 30_000 * scale },
  async (t) => {
    const z = new Fuzz(seed);
    const agentCorpus = [
      f(FrameType.HEALTH_REPLY, 1, P.encodeHealthReply({ uptimeMs: 5, sessions: 1, name: 'x' })),
      f(FrameType.EXEC_STARTED, 2, u32(42)),
      f(FrameType.STDOUT, 2, 'out'),
      f(FrameType.STDERR, 2, 'err'),
      f(FrameType.WINDOW, 2, u32(10)),
      f(FrameType.EXIT, 2, P.encodeExit({ kind: 'exited', code: 3 })),
      f(
        FrameType.PORTS_REPLY,
        3,
        P.encodePortsReply({
          truncated: false,
          ports: [{ protocol: 'tcp', family: 6, address: '::1', port: 1, uid: 0 }],
        }),
      ),
      f(FrameType.FILE_INFO, 4, P.encodeFileInfo({ mode: 0o644, uid: 0, gid: 0, size: 3, mtimeS: 0 })),
      f(FrameType.FILE_DATA, 4, 'abc'),
      f(FrameType.FILE_DATA, 4),
      f(FrameType.ERROR, 5, P.encodeError({ code: 6, errno: 2, message: 'nope' })),
      f(FrameType.OK, 6),
    ];
    const rounds = await forAbout(3_000, 400, async () => {
      // The decoder alone, in random cuts: frames or an AppError, nothing else.
      const input = Buffer.concat(Array.from({ length: 1 + z.int(6) }, () => z.mutate(z.pick(agentCorpus))));
      const d = new FrameDecoder();
      try {
        let off = 0;
        let out = 0;
        while (off < input.length) {
          const n = 1 + z.int(64);
          for (const fr of d.push(input.subarray(off, off + n))) out += HEADER_SIZE + fr.payload.length;
          off += n;
        }
        assert.equal(out + d.pending, input.length, `seed ${seed}: every byte is a frame or held`);
      } catch (e) {
        if (!(e instanceof AppError))
          assert.fail(`seed ${seed}: ${String(e)} (input ${saveFailure('ts-decoder.bin', input)})`);
      }

      // The client: calls in flight, hostile frames, then the guest hangs up. Every call settles.
      const [host, guest] = duplexPair();
      guest.on('data', () => undefined);
      const connecting = AgentClient.connect(host, { timeoutMs: 5_000 });
      guest.write(
        f(FrameType.HELLO, 0, P.encodeAgentHello({ version: PROTOCOL_VERSION, maxPayload: MAX_PAYLOAD, name: 'fuzz' })),
      );
      const client = await connecting;
      const calls: Promise<unknown>[] = [
        client.health(),
        client.exec({ argv: ['x'] }).exit,
        client.ports(),
        client.getFile('/x'),
        client.putFile('/y', Buffer.from('abc')),
        client.shutdown(),
      ];
      const states = calls.map(() => 'pending');
      calls.forEach((c, i) =>
        c.then(
          () => (states[i] = 'resolved'),
          () => (states[i] = 'rejected'),
        ),
      );
      guest.write(input);
      guest.end();
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 10_000)));
      const settled = await Promise.race([Promise.allSettled(calls), hung]);
      clearTimeout(timer);
      if (settled === 'hung') {
        const names = ['health', 'exec', 'ports', 'getFile', 'putFile', 'shutdown'];
        const left = names.filter((_, i) => states[i] === 'pending').join(', ');
        assert.fail(
          `seed ${seed}: ${left} still pending after the guest hung up (input ${saveFailure('ts-client.bin', input)})`,
        );
      }
      const results = settled;
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(r.reason instanceof AppError, `seed ${seed}: ${String(r.reason)}`);
      }
      assert.equal(client.isOpen, false);
    });
    t.diagnostic(`${rounds} rounds, seed ${seed}`);
    assert.ok(rounds > 0);
  },
);

test(
  'fuzz: the C agent over a stream ends every input with an error or a clean exit',
  { skip: skipC, timeout: 60_000 * scale },
  async (t) => {
    const z = new Fuzz(seed + 1);
    const rounds = await forAbout(7_000, 300, async (round) => {
      const agent = await startHostAgent({ mode: 'stdio', uid: asNobody });
      try {
        writeFileSync(join(agent.dir, 'readable'), 'fuzz\n');
        const input = Buffer.concat([HELLO, hostInput(z, hostCorpus(agent.dir)), f(FrameType.HEALTH, 0x7fff0000)]);
        const out: Buffer[] = [];
        agent.proc.stdout?.on('data', (d: Buffer) => out.push(d));
        agent.proc.stdin?.end(input);
        const timer = setTimeout(() => agent.proc.kill('SIGKILL'), 10_000);
        const exit = await agent.exited;
        clearTimeout(timer);
        const d = new FrameDecoder();
        let frames: Frame[] = [];
        let problem: string | undefined;
        try {
          frames = d.push(Buffer.concat(out));
        } catch (e) {
          problem = `the agent wrote a malformed frame: ${(e as Error).message}`;
        }
        if (/Sanitizer|runtime error/.test(agent.stderr())) problem = 'a sanitizer report';
        else if (exit.signal !== null || (exit.code !== 0 && exit.code !== 2)) problem = `exit ${JSON.stringify(exit)}`;
        else if (d.pending !== 0) problem = `the agent left ${d.pending} bytes of an unfinished frame`;
        else if (frames[0]?.type !== FrameType.HELLO) problem = 'the first frame is not HELLO';
        else if (exit.code === 2 && !frames.some((fr) => fr.type === FrameType.ERROR && fr.session === 0))
          problem = 'exit 2 without a session-0 ERROR';
        // Only a failing round leaves its input behind.
        if (problem) {
          assert.fail(
            `${problem}: seed ${seed} round ${round}, input ${saveFailure(`agent-${round}.bin`, input)}, stderr:\n${agent.stderr().slice(-2000)}`,
          );
        }
        for (const fr of frames) if (fr.type === FrameType.ERROR) P.decodeError(fr.payload);
      } finally {
        await agent.stop();
      }
    });
    t.diagnostic(`${rounds} rounds, seed ${seed}`);
    assert.ok(rounds > 0);
  },
);

test(
  'fuzz: the C agent with virtio-serial semantics survives anything and answers a new HELLO',
  { skip: skipC, timeout: 60_000 * scale },
  async (t) => {
    const z = new Fuzz(seed + 2);
    let agent = await startHostAgent({ mode: 'stdio', serial: true, uid: asNobody });
    const frames: Frame[] = [];
    let decoder = new FrameDecoder();
    const attach = (a: typeof agent): void => {
      decoder = new FrameDecoder();
      a.proc.stdout?.on('data', (d: Buffer) => frames.push(...decoder.push(d)));
    };
    attach(agent);
    const pad = Buffer.alloc(HEADER_SIZE + MAX_PAYLOAD + HEADER_SIZE); // ends any frame the noise began
    let health = 0x10000000;
    try {
      const rounds = await forAbout(4_000, 200, async (round) => {
        writeFileSync(join(agent.dir, 'readable'), 'fuzz\n');
        const noise = hostInput(
          z,
          hostCorpus(agent.dir).filter((fr) => fr[8] !== FrameType.SHUTDOWN),
        );
        const id = ++health;
        const input = Buffer.concat([noise, pad, HELLO, f(FrameType.HEALTH, id)]);
        agent.proc.stdin?.write(input);
        const deadline = Date.now() + 10_000;
        while (!frames.some((fr) => fr.type === FrameType.HEALTH_REPLY && fr.session === id)) {
          const where = (): string =>
            `seed ${seed} round ${round}, input ${saveFailure(`serial-${round}.bin`, input)}, stderr:\n${agent.stderr().slice(-2000)}`;
          if (agent.proc.exitCode !== null || agent.proc.signalCode !== null) {
            // Noise can spell a valid SHUTDOWN: the host build then exits 0 after writing its marker.
            if (agent.proc.exitCode !== 0 || /Sanitizer|runtime error/.test(agent.stderr()))
              assert.fail(`the agent died: ${where()}`);
            await agent.stop();
            agent = await startHostAgent({ mode: 'stdio', serial: true, uid: asNobody });
            attach(agent);
            return;
          }
          if (Date.now() > deadline) assert.fail(`no HEALTH_REPLY after a fresh HELLO: ${where()}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        frames.length = 0;
      });
      t.diagnostic(`${rounds} rounds, seed ${seed}`);
      assert.ok(rounds > 0);
      assert.doesNotMatch(agent.stderr(), /Sanitizer|runtime error/);
    } finally {
      await agent.stop();
    }
  },
);
