import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo, type LookupFunction, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { AppError } from '../errors.js';
import { FakeRegistry } from '../../test/helpers/registry.js';
import { parseReference } from '../imagepull/reference.js';
import { RegistryClient } from '../imagepull/registry.js';
import { openUrl } from './download.js';
import { proxySettingsFromEnv, type ProxyEnv } from './proxy.js';
import { httpTransport, type HttpFetch } from './transport.js';

/*
 * Real proxying on loopback only: an origin (http and https) and a small
 * forward/CONNECT proxy, all on 127.0.0.1. Test URLs name *.banger.test
 * hosts; the proxy maps them to the loopback origins, and direct connections
 * resolve them with an injected lookup to 127.0.0.1, so no DNS query and no
 * connection ever leaves loopback. The transport is built from an env object,
 * never from process.env.
 */

const fixture = (name: string): Buffer => readFileSync(new URL(`../../../test/fixtures/tls/${name}`, import.meta.url));
const CERT = fixture('origin.crt');
const KEY = fixture('origin.key');
const BODY = Buffer.from('kernel bytes '.repeat(500));

async function listen(t: TestContext, server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** An origin serving BODY at /file (and counting requests), over http or https. */
async function origin(t: TestContext, tls: boolean): Promise<{ port: number; hits: string[] }> {
  const hits: string[] = [];
  const handler = (req: { url?: string | undefined }, res: import('node:http').ServerResponse): void => {
    hits.push(req.url ?? '');
    if (req.url !== '/file') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': String(BODY.length) }).end(BODY);
  };
  const server = tls ? createHttpsServer({ cert: CERT, key: KEY }, handler) : createHttpServer(handler);
  return { port: await listen(t, server), hits };
}

interface TestProxy {
  port: number;
  /** 'GET <absolute url>' and 'CONNECT host:port', in order, with the Proxy-Authorization seen. */
  log: { line: string; auth: string | undefined }[];
}

/**
 * A forward (absolute-form GET) and CONNECT proxy on 127.0.0.1. It reaches
 * only the loopback ports in `routes` (by the host:port the client asked
 * for) and answers 502 for anything else; with `requireAuth` it answers 407
 * unless Proxy-Authorization matches.
 */
async function proxy(t: TestContext, routes: Record<string, number>, requireAuth?: string): Promise<TestProxy> {
  const log: TestProxy['log'] = [];
  const server = createHttpServer((req, res) => {
    const auth = req.headers['proxy-authorization'];
    log.push({ line: `GET ${req.url ?? ''}`, auth });
    if (requireAuth !== undefined && auth !== requireAuth) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="test"' }).end();
      return;
    }
    const target = new URL(req.url ?? '');
    const port = routes[target.host];
    if (port === undefined) {
      res.writeHead(502).end();
      return;
    }
    const up = httpRequest(
      { host: '127.0.0.1', port, path: target.pathname, headers: { ...req.headers, host: target.host } },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    up.end();
  });
  const sockets = new Set<Socket>();
  server.on('connect', (req, client: Socket) => {
    const auth = req.headers['proxy-authorization'];
    log.push({ line: `CONNECT ${req.url ?? ''}`, auth });
    sockets.add(client);
    client.on('error', () => undefined);
    if (requireAuth !== undefined && auth !== requireAuth) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const port = routes[req.url ?? ''];
    if (port === undefined) {
      client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const up = connect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.pipe(client);
      client.pipe(up);
    });
    sockets.add(up);
    up.on('error', () => client.destroy());
  });
  t.after(() => {
    for (const s of sockets) s.destroy();
  });
  return { port: await listen(t, server), log };
}

/** Resolves every name to 127.0.0.1 (direct connections in these tests never do a real DNS lookup). */
const loopbackLookup: LookupFunction = (_host, opts, cb) => {
  if (opts.all === true) cb(null, [{ address: '127.0.0.1', family: 4 }]);
  else cb(null, '127.0.0.1', 4);
};

function transport(env: ProxyEnv): HttpFetch {
  return httpTransport({ proxy: proxySettingsFromEnv(env), lookup: loopbackLookup, ca: CERT });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function download(url: string, fetch: HttpFetch): Promise<Buffer> {
  const { stream } = await openUrl(new URL(url), { fetch });
  return readAll(stream);
}

test('HTTPS_PROXY: an https download goes through a CONNECT tunnel, TLS checked end to end', async (t) => {
  const o = await origin(t, true);
  const host = `origin.banger.test:${o.port}`;
  const p = await proxy(t, { [host]: o.port });
  const got = await download(`https://${host}/file`, transport({ HTTPS_PROXY: `http://127.0.0.1:${p.port}` }));
  assert.deepEqual(got, BODY);
  assert.deepEqual(
    p.log.map((l) => l.line),
    [`CONNECT ${host}`],
  );
  assert.deepEqual(o.hits, ['/file']);
});

test('http_proxy: a plain-http download is forwarded by the proxy (absolute-form request)', async (t) => {
  const o = await origin(t, false);
  const host = `origin.banger.test:${o.port}`;
  const p = await proxy(t, { [host]: o.port });
  const got = await download(`http://${host}/file`, transport({ http_proxy: `http://127.0.0.1:${p.port}` }));
  assert.deepEqual(got, BODY);
  assert.deepEqual(
    p.log.map((l) => l.line),
    [`GET http://${host}/file`],
  );
});

test('NO_PROXY: a matching host is fetched directly, the proxy sees nothing', async (t) => {
  const o = await origin(t, true);
  const host = `origin.banger.test:${o.port}`;
  const p = await proxy(t, { [host]: o.port });
  for (const noProxy of ['origin.banger.test', '.banger.test', `origin.banger.test:${o.port}`, '*']) {
    const f = transport({ HTTPS_PROXY: `http://127.0.0.1:${p.port}`, NO_PROXY: noProxy });
    assert.deepEqual(await download(`https://${host}/file`, f), BODY, noProxy);
  }
  // A NO_PROXY entry for another port does not match: this one goes through the proxy.
  const other = transport({ HTTPS_PROXY: `http://127.0.0.1:${p.port}`, no_proxy: 'origin.banger.test:1' });
  assert.deepEqual(await download(`https://${host}/file`, other), BODY);
  assert.deepEqual(
    p.log.map((l) => l.line),
    [`CONNECT ${host}`],
  );
  assert.equal(o.hits.length, 5);
});

test('loopback is never proxied, whatever HTTP_PROXY says', async (t) => {
  const o = await origin(t, false);
  const p = await proxy(t, {});
  const f = transport({ HTTP_PROXY: `http://127.0.0.1:${p.port}`, HTTPS_PROXY: `http://127.0.0.1:${p.port}` });
  assert.deepEqual(await download(`http://127.0.0.1:${o.port}/file`, f), BODY);
  assert.deepEqual(await download(`http://localhost:${o.port}/file`, f), BODY);
  assert.deepEqual(p.log, []);
});

test('proxy credentials are sent as Proxy-Authorization; a 407 names the proxy without the password', async (t) => {
  const o = await origin(t, true);
  const host = `origin.banger.test:${o.port}`;
  const good = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
  const p = await proxy(t, { [host]: o.port }, good);
  const ok = transport({ HTTPS_PROXY: `http://alice:s3cret@127.0.0.1:${p.port}` });
  assert.deepEqual(await download(`https://${host}/file`, ok), BODY);
  assert.equal(p.log[0]?.auth, good);
  const bad = transport({ HTTPS_PROXY: `http://alice:wrong@127.0.0.1:${p.port}` });
  await assert.rejects(download(`https://${host}/file`, bad), (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.match(e.message, /proxy http:\/\/alice:\*\*\*@127\.0\.0\.1:\d+ \(HTTPS_PROXY\) refused a tunnel to .*: 407/);
    assert.doesNotMatch(e.message, /wrong/);
    assert.match(e.hint ?? '', /USER:PASSWORD/);
    return true;
  });
});

test('a proxy that is down is named in the error', async (t) => {
  const closed = createHttpServer();
  const port = await listen(t, closed);
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const f = transport({ HTTPS_PROXY: `http://127.0.0.1:${port}` });
  await assert.rejects(download('https://origin.banger.test:1/file', f), (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, 'operation_failed');
    assert.match(e.message, /connection refused \(through proxy http:\/\/127\.0\.0\.1:\d+ \(HTTPS_PROXY\)\)/);
    return true;
  });
});

test('the registry client pulls through the proxy too', async (t) => {
  const r = await FakeRegistry.start();
  t.after(() => r.stop());
  const img = await r.pushImage('team/app', 'v1', {
    layers: [{ files: { 'etc/hostname': 'box\n' }, compression: 'gzip' }],
  });
  const registryPort = Number(r.host.split(':')[1]);
  const host = `registry.banger.test:${registryPort}`;
  const p = await proxy(t, { [host]: registryPort });
  const client = new RegistryClient({
    insecureHosts: [host],
    fetch: transport({ HTTP_PROXY: `http://127.0.0.1:${p.port}` }),
  });
  const ref = parseReference(`${host}/team/app:v1`);
  const resolved = await client.resolve(ref);
  assert.equal(resolved.manifestDigest, img.manifestDigest);
  const layer = img.layers[0];
  assert.ok(layer);
  assert.deepEqual(await readAll(await client.blob(ref, layer.digest, layer.blob.length)), layer.blob);
  assert.ok(p.log.length >= 3, JSON.stringify(p.log));
  assert.ok(
    p.log.every((l) => l.line.startsWith(`GET http://${host}/v2/`)),
    JSON.stringify(p.log),
  );
});
