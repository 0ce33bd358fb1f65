import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { AppError } from '../../errors.js';
import { probeBind } from '../../system/portprobe.js';
import { freeLoopbackPort } from '../../system/net.js';
import { parsePublication } from '../vm/portspec.js';
import { PortProxies } from './portproxy.js';

/* Loopback only: the "guest" is a listener on 127.0.0.1. */

async function tcpEcho(): Promise<{ port: number; close: () => void }> {
  const srv = createServer((s) => s.on('data', (d) => s.end(`echo:${d.toString()}`)));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as AddressInfo).port, close: () => srv.close() };
}

async function tcpAsk(port: number, msg: string): Promise<string> {
  const c = createConnection({ host: '127.0.0.1', port });
  c.end(msg);
  let out = '';
  c.on('data', (d) => (out += d.toString()));
  await once(c, 'close');
  return out;
}

test('bridge-mode port relay: tcp and udp reach the target, closing frees the host port', async () => {
  const echo = await tcpEcho();
  const udp = createSocket('udp4');
  udp.on('message', (m, r) => udp.send(`echo:${m.toString()}`, r.port, r.address));
  udp.bind(0, '127.0.0.1');
  await once(udp, 'listening');
  const [hp, up] = [await freeLoopbackPort(), await freeLoopbackPort()];
  const proxies = new PortProxies();
  const tcpPub = parsePublication(`127.0.0.1:${hp}:${echo.port}`);
  const udpPub = parsePublication(`127.0.0.1:${up}:${udp.address().port}/udp`);
  await proxies.add('vm1', '127.0.0.1', [tcpPub, udpPub]);
  try {
    assert.equal(await tcpAsk(hp, 'hi'), 'echo:hi');
    assert.equal(await probeBind('127.0.0.1', hp, 'tcp'), 'EADDRINUSE', 'the relay holds the port');
    const client = createSocket('udp4');
    client.send('ping', up, '127.0.0.1');
    const [reply] = (await once(client, 'message')) as [Buffer];
    assert.equal(reply.toString(), 'echo:ping');
    client.close();
    assert.ok(proxies.has('vm1', tcpPub));
  } finally {
    await proxies.closeVm('vm1');
    echo.close();
    udp.close();
  }
  assert.equal(proxies.has('vm1', tcpPub), false);
  assert.equal(await probeBind('127.0.0.1', hp, 'tcp'), undefined, 'free again');
  assert.equal(await probeBind('127.0.0.1', up, 'udp'), undefined, 'free again');
});

test('bridge-mode port relay: a taken host port is a precondition error naming it, and nothing of the call stays open', async () => {
  const taken = createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  const takenPort = (taken.address() as AddressInfo).port;
  const free = await freeLoopbackPort();
  const proxies = new PortProxies();
  await assert.rejects(
    proxies.add('vm1', '127.0.0.1', [parsePublication(`${free}:80`), parsePublication(`${takenPort}:80`)]),
    (e: unknown) =>
      e instanceof AppError &&
      e.code === 'precondition' &&
      e.message === `cannot publish 127.0.0.1:${takenPort}/tcp: the port is taken on the host`,
  );
  assert.equal(await probeBind('127.0.0.1', free, 'tcp'), undefined, 'the first relay was closed again');
  taken.close();
});
