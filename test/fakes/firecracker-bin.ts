import { appendFileSync, existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { AGENT_VSOCK_PORT } from '../../src/agent/vsock.js';
import { FakeAgent } from './agent.js';
import { FakeFirecracker } from './firecracker-api.js';

/*
 * A fake `firecracker` executable for integration tests (tests wrap it in a
 * shell script named by firecracker_bin): `--version` prints a version;
 * `--api-sock PATH --id ID` serves the fake API (firecracker-api.ts, which
 * enforces what firecracker 1.5 does: pre-boot-only config, one InstanceStart,
 * files and sockets checked at PUT time) on PATH until it is signalled, as the
 * real process does. A tap must exist in this network namespace when it is
 * PUT (/sys/class/net/<tap>), as firecracker opens it then. Every request, once
 * answered, is appended as one JSON line to $FAKE_FC_LOG (with the instance id).
 * No guest runs, so there is no ssh; once InstanceStart succeeded, the vsock
 * socket answers firecracker's host-initiated handshake (`CONNECT <port>\n`,
 * then `OK <host port>\n`) for the agent's port and speaks the agent protocol
 * (test/fakes/agent.ts); the agent's shutdown ends the process, as a guest
 * poweroff ends firecracker. Before InstanceStart, or for another port, the
 * connection is closed, as firecracker does when nothing listens in the guest.
 */

const FAKE_VERSION = 'Firecracker v1.7.0';
/** Longest handshake line read (firecracker's own bound is similar). */
const MAX_CONNECT_LINE = 64;
/** The host-side port firecracker reports in its OK line (an ephemeral local port number). */
let nextHostPort = 1_073_741_824;
/** The agents of this process's connections (kept referenced while their streams live). */
const agents: FakeAgent[] = [];

/** Firecracker's hybrid-vsock handshake, then the fake agent on the same stream. */
function vsockConnect(c: Socket, running: () => boolean, onShutdown: () => void): void {
  let buf = Buffer.alloc(0);
  c.on('error', () => undefined);
  const onData = (chunk: Buffer): void => {
    buf = Buffer.concat([buf, chunk]);
    const nl = buf.indexOf(0x0a);
    if (nl < 0) {
      if (buf.length > MAX_CONNECT_LINE) c.destroy();
      return;
    }
    c.off('data', onData);
    const m = /^CONNECT (\d+)$/.exec(buf.subarray(0, nl).toString('latin1'));
    if (!m || Number(m[1]) !== AGENT_VSOCK_PORT || !running()) {
      c.destroy();
      return;
    }
    c.write(`OK ${nextHostPort++}\n`);
    agents.push(new FakeAgent(c, { name: 'fake-firecracker-guest', onShutdown }));
    // Bytes the host sent right after its CONNECT line belong to the agent (its listener is on now).
    const rest = buf.subarray(nl + 1);
    if (rest.length) c.emit('data', rest);
  };
  c.on('data', onData);
}

function arg(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--version')) {
    process.stdout.write(`${FAKE_VERSION}\n`);
    return 0;
  }
  const sock = arg(argv, '--api-sock');
  const id = arg(argv, '--id') ?? 'anonymous-instance';
  if (sock === undefined) {
    process.stderr.write('fake firecracker: --api-sock is required\n');
    return 1;
  }
  const log = process.env.FAKE_FC_LOG;
  // The callbacks run only once the API is up, so `fake` is set by then.
  const exit = (code: number): void => {
    void fake.close().finally(() => process.exit(code));
  };
  const fake: FakeFirecracker = await FakeFirecracker.start(sock, {
    id,
    version: FAKE_VERSION.split(' v')[1],
    openTap: (name) => existsSync(`/sys/class/net/${name}`),
    // A guest that honours Ctrl-Alt-Del halts; with reboot=k firecracker then exits.
    onCtrlAltDel: () => setTimeout(() => exit(0), 100),
    onVsockConnect: (c) =>
      vsockConnect(
        c,
        () => fake.state === 'Running',
        () => setTimeout(() => exit(0), 100),
      ),
    onRequest: (r) => {
      if (log) appendFileSync(log, `${JSON.stringify({ id, pid: process.pid, ...r })}\n`);
    },
  });
  process.stdout.write(`fake firecracker ${id}: API on ${sock}\n`);
  process.on('SIGTERM', () => exit(0));
  process.on('SIGINT', () => exit(0));
  return new Promise<number>(() => undefined);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`fake firecracker: ${String(e)}\n`);
    process.exit(1);
  },
);
