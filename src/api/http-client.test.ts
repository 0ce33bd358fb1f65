import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AppError } from '../errors.js';
import { callMethod, classifyFrame, RemoteError } from './http-client.js';

const dir = mkdtempSync(join(tmpdir(), 'http-client-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('classifyFrame: the four frames, and anything else is a protocol error', () => {
  const err = { code: 'not_found', message: 'no vm', op_id: 'op-1' };
  const cases: [unknown, string | RegExp][] = [
    [{ event: { stage: 'boot', message: 'x' } }, 'event'],
    [{ result: null, op_id: 'op-1' }, 'result'],
    [{ result: [1], op_id: 'op-1' }, 'result'],
    [{ error: err }, 'error'],
    [{ frame: { stdout: 'aGk=' } }, 'frame'],
    [{ error: { ...err, code: 'made_up' } }, /not a frame/],
    [{ error: 'boom' }, /not a frame/],
    [{ event: 'x' }, /not a frame/],
    [{}, /not a frame/],
    [[], /not a frame/],
    [null, /not a frame/],
    ['result', /not a frame/],
  ];
  for (const [v, want] of cases) {
    if (typeof want === 'string') assert.equal(classifyFrame(v).kind, want, JSON.stringify(v));
    else
      assert.throws(
        () => classifyFrame(v),
        (e: unknown) => e instanceof AppError && e.code === 'operation_failed' && want.test(e.message),
        JSON.stringify(v),
      );
  }
});

/** A daemon stand-in on a Unix socket that answers every request with `status` and `body`. */
async function fake(name: string, status: number, body: string): Promise<{ path: string; close: () => void }> {
  const path = join(dir, `${name}.sock`);
  const srv = createServer((req, res) => {
    req.resume();
    res.writeHead(status, { 'content-type': 'application/x-ndjson' });
    res.end(body);
  });
  await new Promise<void>((r) => srv.listen(path, r));
  return { path, close: () => srv.close() };
}

test('callMethod: events in order, then the result; an error frame is a RemoteError with its status; a body without a terminal frame is named', async () => {
  const cases: { name: string; status: number; body: string; check: (r: unknown, events: string[]) => void }[] = [
    {
      name: 'ok',
      status: 200,
      body: '{"event":{"stage":"a","message":"1"}}\n\n{"event":{"stage":"b","message":"2"}}\n{"result":[7],"op_id":"op-1"}\n',
      check: (r, events) => {
        assert.deepEqual(r, [7]);
        assert.deepEqual(events, ['a', 'b']);
      },
    },
    {
      name: 'error',
      status: 404,
      body: '{"error":{"code":"not_found","message":"no vm x","hint":"list them","op_id":"op-2"}}\n',
      check: (e) => {
        assert.ok(e instanceof RemoteError);
        assert.equal(e.code, 'not_found');
        assert.equal(e.hint, 'list them');
        assert.equal(e.opId, 'op-2');
        assert.equal(e.status, 404);
      },
    },
    {
      name: 'empty 408',
      status: 408,
      body: '',
      check: (e) => assert.match(String(e), /closed the connection during vm\.list \(HTTP 408\)/),
    },
    { name: 'not frames', status: 200, body: '<html>\n', check: (e) => assert.match(String(e), /not valid JSON/) },
  ];
  for (const c of cases) {
    const f = await fake(c.name.replace(/ /g, '-'), c.status, c.body);
    const events: string[] = [];
    const out = await callMethod(
      { socketPath: f.path },
      'v',
      'vm.list',
      {},
      { onEvent: (e) => events.push(e.stage) },
    ).then(
      (r) => r,
      (e: unknown) => e,
    );
    c.check(out, events);
    f.close();
  }
});
