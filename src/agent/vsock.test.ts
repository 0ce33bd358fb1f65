import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from './client.js';
import { FakeAgent } from '../../test/fakes/agent.js';
import { connectFirecrackerVsock, parseVsockReply } from './vsock.js';

test('parseVsockReply: OK <port> then the guest bytes; anything else is refused', () => {
  assert.deepEqual(parseVsockReply(Buffer.from('OK 10')), { done: false });
  assert.deepEqual(parseVsockReply(Buffer.from('OK 1073741824\nHELLO')), {
    done: true,
    hostPort: 1073741824,
    rest: Buffer.from('HELLO'),
  });
  const bad: [string, RegExp][] = [
    ['ERR no listener\n', /answered "ERR no listener" instead of OK <port>/],
    ['OK\n', /answered "OK"/],
    ['OK 12345678901\n', /answered "OK 12345678901"/],
    ['x'.repeat(64), /64 bytes without a line end/],
  ];
  for (const [input, re] of bad) assert.throws(() => parseVsockReply(Buffer.from(input)), re, input);
});

/**
 * A stand-in for Firecracker's vsock Unix socket: reads `CONNECT <port>\n`,
 * then either bridges to a fake agent (answering OK) or closes, as
 * Firecracker does when nothing listens on the guest port.
 */
function fakeFirecracker(path: string, listening: number): Promise<Server> {
  const server = createServer((sock: Socket) => {
    let line = '';
    const onData = (d: Buffer): void => {
      line += d.toString('latin1');
      if (!line.includes('\n')) return;
      sock.off('data', onData);
      if (line !== `CONNECT ${listening}\n`) return void sock.destroy();
      sock.write('OK 1073741824\n');
      new FakeAgent(sock);
    };
    sock.on('data', onData);
  });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

test('connectFirecrackerVsock performs the CONNECT handshake, then speaks the agent protocol', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'banger-vsock-'));
  const path = join(dir, 'v.sock');
  const server = await fakeFirecracker(path, 1024);
  try {
    const sock = await connectFirecrackerVsock(path, 1024);
    const client = await AgentClient.connect(sock);
    assert.equal((await client.health()).name, 'fake-agent');
    client.close();
    await assert.rejects(connectFirecrackerVsock(path, 52), /closed: nothing listens on guest port 52/);
    await assert.rejects(
      connectFirecrackerVsock(join(dir, 'absent.sock'), 1024),
      /cannot connect to the vsock socket .*absent\.sock/,
    );
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
