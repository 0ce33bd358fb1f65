import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { AppError } from '../errors.js';
import { checkUrl, openUrl, type FetchPolicy } from './download.js';

const NO_POLICY: FetchPolicy = { insecureHosts: [] };

const urlCases: { url: string; policy?: FetchPolicy; ok: boolean; re?: RegExp }[] = [
  { url: 'https://example.com/k.tar.zst', ok: true },
  { url: 'https://example.com:8443/k.tar.zst', ok: true },
  { url: 'http://127.0.0.1:8080/k.tar.zst', ok: true },
  { url: 'http://127.1.2.3/k', ok: true },
  { url: 'http://127.1/k', ok: true },
  { url: 'http://[::1]:9000/k', ok: true },
  { url: 'http://localhost/k', ok: true },
  { url: 'http://LOCALHOST:3000/k', ok: true },
  { url: 'file:///srv/kernels/k.tar.zst', ok: true },
  { url: 'file://localhost/srv/k.tar.zst', ok: true },
  { url: 'http://10.0.0.1/k', ok: false, re: /plain http from 10\.0\.0\.1:80/ },
  { url: 'http://example.com/k', ok: false, re: /plain http from example\.com:80/ },
  { url: 'http://example.com/k', policy: { insecureHosts: ['example.com:80'] }, ok: true },
  { url: 'http://EXAMPLE.com:80/k', policy: { insecureHosts: ['example.com:80'] }, ok: true },
  { url: 'http://example.com:8080/k', policy: { insecureHosts: ['example.com:80'] }, ok: false, re: /plain http/ },
  { url: 'http://10.0.0.5:5000/k', policy: { insecureHosts: ['10.0.0.5:5000'] }, ok: true },
  { url: 'http://[fd00::1]:5000/k', policy: { insecureHosts: ['[fd00:0::1]:5000'] }, ok: true },
  { url: 'http://128.0.0.1/k', ok: false, re: /plain http/ },
  { url: 'http://localhost.example.com/k', ok: false, re: /plain http/ },
  { url: 'ftp://example.com/k', ok: false, re: /unsupported URL scheme "ftp:"/ },
  { url: 'not a url', ok: false, re: /not a valid URL/ },
  { url: '/srv/k.tar.zst', ok: false, re: /not a valid URL/ },
  { url: 'file://otherhost/srv/k', ok: false, re: /must name a local path/ },
  { url: 'https://user:secret@example.com/k', ok: false, re: /embedded credentials/ },
];

for (const c of urlCases) {
  test(`checkUrl ${c.url}${c.policy ? ` with ${c.policy.insecureHosts.join(',')}` : ''}`, () => {
    if (c.ok) {
      assert.ok(checkUrl(c.url, c.policy ?? NO_POLICY) instanceof URL);
      return;
    }
    assert.throws(
      () => checkUrl(c.url, c.policy ?? NO_POLICY),
      (e: unknown) =>
        e instanceof AppError && e.code === 'bad_request' && (c.re?.test(e.message) ?? false) && (e.hint ?? '') !== '',
    );
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** An HTTP server on 127.0.0.1 with an ephemeral port, closed after the test. */
async function serve(t: TestContext, routes: Record<string, Handler>): Promise<string> {
  const server = createServer((req, res) => {
    const handler = routes[req.url ?? ''];
    if (handler === undefined) {
      res.writeHead(404).end('no such thing');
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const BODY = Buffer.from('kernel bytes '.repeat(1000));

function sendBody(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BODY.length) });
  res.end(BODY);
}

function isOperationFailed(re: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof AppError, `expected AppError, got ${String(e)}`);
    assert.equal(e.code, 'operation_failed');
    assert.match(e.message, re);
    return true;
  };
}

test('openUrl streams a 200 body and reports Content-Length', async (t) => {
  const base = await serve(t, { '/k': sendBody });
  const { stream, size } = await openUrl(new URL(`${base}/k`));
  assert.equal(size, BODY.length);
  assert.deepEqual(await readAll(stream), BODY);
});

test('openUrl: 404 is an operationFailed naming the URL and status', async (t) => {
  const base = await serve(t, {});
  await assert.rejects(
    openUrl(new URL(`${base}/missing`)),
    isOperationFailed(new RegExp(`${base}/missing failed: HTTP 404`)),
  );
});

test('openUrl: 500 is an operationFailed', async (t) => {
  const base = await serve(t, { '/boom': (_req, res) => res.writeHead(500).end('x') });
  await assert.rejects(openUrl(new URL(`${base}/boom`)), isOperationFailed(/HTTP 500/));
});

test('openUrl follows a 302 to another path on the same server', async (t) => {
  const base = await serve(t, {
    '/old': (_req, res) => res.writeHead(302, { location: '/new' }).end(),
    '/new': sendBody,
  });
  const { stream, size } = await openUrl(new URL(`${base}/old`));
  assert.equal(size, BODY.length);
  assert.deepEqual(await readAll(stream), BODY);
});

test('openUrl refuses a redirect to a plain-http host that is not allowed', async (t) => {
  // Only checkUrl runs on the target; nothing connects to 10.0.0.1.
  const base = await serve(t, { '/old': (_req, res) => res.writeHead(301, { location: 'http://10.0.0.1/k' }).end() });
  await assert.rejects(
    openUrl(new URL(`${base}/old`)),
    (e: unknown) =>
      e instanceof AppError && e.code === 'bad_request' && /redirected to http:\/\/10\.0\.0\.1\/k/.test(e.message),
  );
});

test('openUrl gives up on a redirect loop', async (t) => {
  const base = await serve(t, { '/loop': (_req, res) => res.writeHead(302, { location: '/loop' }).end() });
  await assert.rejects(openUrl(new URL(`${base}/loop`)), isOperationFailed(/more than 20 redirects/));
});

test('openUrl: a body cut short of its Content-Length is a truncated download', async (t) => {
  const base = await serve(t, {
    '/short': (_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write(Buffer.alloc(10, 1));
      setTimeout(() => res.socket?.destroy(), 50);
    },
  });
  const url = `${base}/short`;
  const { stream, size } = await openUrl(new URL(url));
  assert.equal(size, 1000);
  await assert.rejects(
    readAll(stream),
    isOperationFailed(new RegExp(`^download truncated: got 10 of 1000 bytes from ${url}$`)),
  );
});

test('openUrl: a chunked body whose connection dies is a truncated download', async (t) => {
  const base = await serve(t, {
    '/chunked': (_req, res) => {
      res.writeHead(200);
      res.write(Buffer.alloc(7, 1));
      setTimeout(() => res.socket?.destroy(), 50);
    },
  });
  const { stream, size } = await openUrl(new URL(`${base}/chunked`));
  assert.equal(size, undefined);
  await assert.rejects(readAll(stream), isOperationFailed(/^download truncated: the connection closed after 7 bytes/));
});

test('openUrl: connection refused is an operationFailed', async () => {
  // A port that was just free on 127.0.0.1.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const freePort = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await assert.rejects(
    openUrl(new URL(`http://127.0.0.1:${freePort}/k`)),
    isOperationFailed(/cannot download .*: connection refused$/),
  );
});

test('openUrl: an aborted signal cancels the download', async (t) => {
  const base = await serve(t, {
    '/slow': (_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(10));
    },
  });
  const ac = new AbortController();
  const { stream } = await openUrl(new URL(`${base}/slow`), { signal: ac.signal });
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(readAll(stream), (e: unknown) => e instanceof AppError && e.code === 'cancelled');
});

test('openUrl: destroying the stream while the server stalls releases the connection', async (t) => {
  let closed!: () => void;
  const serverSawClose = new Promise<void>((resolve) => (closed = resolve));
  const base = await serve(t, {
    '/stall': (_req, res) => {
      res.on('close', closed);
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(10));
    },
  });
  const { stream } = await openUrl(new URL(`${base}/stall`));
  await new Promise<void>((resolve) => stream.once('data', () => resolve()));
  stream.destroy();
  // Bounded: a connection that is never released fails here instead of hanging the run.
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    serverSawClose.then(() => 'released' as const),
    new Promise<'still open'>((resolve) => (timer = setTimeout(() => resolve('still open'), 5000))),
  ]);
  clearTimeout(timer);
  assert.equal(outcome, 'released', 'the server saw the connection close after the stream was destroyed');
  assert.ok(stream.destroyed);
});

test('openUrl reads file:// URLs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'banger-fetch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'k.tar.zst');
  writeFileSync(path, BODY);
  const { stream, size } = await openUrl(checkUrl(pathToFileURL(path).href, NO_POLICY));
  assert.equal(size, BODY.length);
  assert.deepEqual(await readAll(stream), BODY);
  await assert.rejects(openUrl(pathToFileURL(join(dir, 'missing'))), isOperationFailed(/no such file/));
  await assert.rejects(
    openUrl(pathToFileURL(dir)),
    (e: unknown) => e instanceof AppError && /not a regular file/.test(e.message),
  );
});

test('openUrl with progress and a size cap hands every byte to a consumer that starts reading later', async (t) => {
  const base = await serve(t, { '/k': sendBody });
  const seen: [number, number | undefined][] = [];
  const { stream, size } = await openUrl(new URL(`${base}/k`), {
    maxBytes: BODY.length,
    onProgress: (got, total) => seen.push([got, total]),
  });
  assert.equal(size, BODY.length);
  // The consumer attaches after a turn of the event loop, as extractors do.
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(await readAll(stream), BODY);
  assert.deepEqual(seen.at(-1), [BODY.length, BODY.length]);
});

test('openUrl: a body over maxBytes is refused, declared or streamed', async (t) => {
  const base = await serve(t, {
    '/declared': sendBody,
    '/chunked': (_req, res) => {
      res.writeHead(200);
      res.end(BODY);
    },
  });
  await assert.rejects(
    openUrl(new URL(`${base}/declared`), { maxBytes: 100 }),
    isOperationFailed(/larger than 100 bytes/),
  );
  const { stream } = await openUrl(new URL(`${base}/chunked`), { maxBytes: 100 });
  await assert.rejects(readAll(stream), isOperationFailed(/larger than 100 bytes/));
});
