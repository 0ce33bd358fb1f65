import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isAppError } from '../../errors.js';
import { FirecrackerApi } from './api.js';
import { FakeFirecracker } from '../../../test/fakes/firecracker-api.js';

const dir = mkdtempSync(join(tmpdir(), 'fc-api-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'vmlinux'), Buffer.from([0x7f, 0x45, 0x4c, 0x46]));

test('api client: success, GET /version and GET / against the fake', async () => {
  const sock = join(dir, 'ok.sock');
  const fake = await FakeFirecracker.start(sock, { id: 'dev', version: '1.6.0' });
  try {
    const api = new FirecrackerApi(sock);
    assert.equal(await api.getVersion(), '1.6.0');
    assert.deepEqual(await api.instanceInfo(), {
      id: 'dev',
      state: 'Not started',
      vmm_version: '1.6.0',
      app_name: 'Firecracker',
    });
    assert.deepEqual(await api.request('PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 512, smt: false }), {
      status: 204,
      json: undefined,
    });
    // The body went with a Content-Length (the fake, like firecracker, ignores chunked bodies).
    assert.deepEqual(fake.requests.at(-1), {
      method: 'PUT',
      path: '/machine-config',
      body: { vcpu_count: 2, mem_size_mib: 512, smt: false },
      status: 204,
    });
  } finally {
    await fake.close();
  }
});

test('api client: non-2xx becomes operation_failed naming method, path, status and fault_message', async () => {
  const sock = join(dir, 'err.sock');
  const fake = await FakeFirecracker.start(sock);
  try {
    const api = new FirecrackerApi(sock);
    const cases: { method: 'PUT' | 'PATCH' | 'GET'; path: string; body?: unknown; message: RegExp }[] = [
      {
        method: 'PUT',
        path: '/drives/rootfs',
        body: { drive_id: 'root', path_on_host: '/x', is_root_device: true, is_read_only: false },
        message:
          /^firecracker API PUT \/drives\/rootfs failed with HTTP 400: The id from the path does not match the id from the body!$/,
      },
      {
        method: 'PUT',
        path: '/boot-source',
        body: { kernel_image_path: join(dir, 'missing') },
        message:
          /^firecracker API PUT \/boot-source failed with HTTP 400: Boot source error: The kernel file cannot be opened/,
      },
      {
        method: 'PUT',
        path: '/actions',
        body: { action_type: 'SendCtrlAltDel' },
        message:
          /^firecracker API PUT \/actions failed with HTTP 400: The requested operation is not supported before starting the microVM\.$/,
      },
      {
        method: 'PATCH',
        path: '/vm',
        body: { state: 'Paused' },
        message:
          /PATCH \/vm failed with HTTP 400: The requested operation is not supported before starting the microVM\.$/,
      },
      {
        method: 'GET',
        path: '/nothing',
        message:
          /^firecracker API GET \/nothing failed with HTTP 400: Invalid request method and\/or path: GET nothing\.$/,
      },
    ];
    for (const c of cases) {
      await assert.rejects(api.request(c.method, c.path, c.body), (e: unknown) => {
        assert.ok(isAppError(e), c.path);
        assert.equal(e.code, 'operation_failed');
        assert.match(e.message, c.message);
        if (c.body !== undefined) assert.match(e.detail ?? '', /request body: \{/);
        return true;
      });
    }
  } finally {
    await fake.close();
  }
});

test('api client: unreachable socket, non-JSON error body, timeout and abort', async () => {
  await assert.rejects(new FirecrackerApi(join(dir, 'none.sock')).request('GET', '/'), (e: unknown) => {
    assert.ok(isAppError(e));
    assert.match(e.message, /cannot reach the firecracker API at .*none\.sock \(GET \/\): ENOENT/);
    return true;
  });

  const sock = join(dir, 'odd.sock');
  let hang = false;
  const server = createServer((req, res) => {
    if (hang) return;
    res.writeHead(500).end('boom');
  });
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    await assert.rejects(new FirecrackerApi(sock).request('GET', '/'), /GET \/ failed with HTTP 500: boom$/);
    hang = true;
    await assert.rejects(
      new FirecrackerApi(sock, { timeoutMs: 100 }).request('GET', '/version'),
      /GET \/version on .* timed out after 100 ms/,
    );
    const ac = new AbortController();
    const p = new FirecrackerApi(sock, { signal: ac.signal }).request('GET', '/');
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(p, (e: unknown) => isAppError(e) && e.code === 'cancelled');
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
