import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { answer, MAX_QUERY_BYTES, parseListen, probeDns, VmDnsServer, VmRecords } from './dns.js';

/* Network: loopback only (the server binds 127.0.0.1 on a port the kernel picks). */

const query = (name: string, type: dnsPacket.RecordType | 'ANY' = 'A', id = 7): Buffer =>
  dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as dnsPacket.RecordType, name }],
  });

const rcodeOf = (b: Buffer): string => (dnsPacket.decode(b) as unknown as { rcode: string }).rcode;

function recs(): VmRecords {
  const r = new VmRecords();
  r.set('dev', '172.16.0.2');
  r.set('web-1', '172.16.0.3');
  return r;
}

const cases: { name: string; q: Buffer; rcode: string | undefined; ip?: string; aa?: boolean }[] = [
  { name: 'known name', q: query('dev.vm'), rcode: 'NOERROR', ip: '172.16.0.2', aa: true },
  { name: 'known name, trailing dot and upper case', q: query('WEB-1.VM.'), rcode: 'NOERROR', ip: '172.16.0.3' },
  { name: 'unknown name under .vm', q: query('nope.vm'), rcode: 'NXDOMAIN', aa: true },
  { name: 'deeper name under .vm', q: query('a.dev.vm'), rcode: 'NXDOMAIN', aa: true },
  { name: 'known name, AAAA: no data', q: query('dev.vm', 'AAAA'), rcode: 'NOERROR', aa: true },
  { name: 'zone apex', q: query('vm'), rcode: 'NOERROR', aa: true },
  { name: 'outside the zone: refused, never recursed', q: query('example.com'), rcode: 'REFUSED', aa: false },
  { name: 'lookalike zone', q: query('dev.vmx'), rcode: 'REFUSED' },
  { name: 'empty', q: Buffer.alloc(0), rcode: undefined },
  { name: 'short garbage', q: Buffer.from('hello'), rcode: undefined },
  {
    name: 'header claiming 5 questions it lacks',
    q: Buffer.from('00070100000500000000000000', 'hex'),
    rcode: undefined,
  },
  {
    name: 'a response is never answered',
    q: dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'dev.vm' }] }),
    rcode: undefined,
  },
  { name: 'oversized', q: Buffer.concat([query('dev.vm'), Buffer.alloc(MAX_QUERY_BYTES)]), rcode: undefined },
  {
    name: 'two questions',
    q: dnsPacket.encode({
      type: 'query',
      id: 3,
      questions: [
        { type: 'A', name: 'dev.vm' },
        { type: 'A', name: 'web-1.vm' },
      ],
    }),
    rcode: 'FORMERR',
  },
];

for (const c of cases) {
  test(`dns answer: ${c.name}`, () => {
    const out = answer(c.q, recs());
    if (c.rcode === undefined) {
      assert.equal(out, undefined, 'dropped');
      return;
    }
    assert.ok(out, 'answered');
    const d = dnsPacket.decode(out);
    assert.equal(d.type, 'response');
    assert.equal(rcodeOf(out), c.rcode);
    assert.equal(d.flag_ra, false, 'never offers recursion');
    if (c.aa !== undefined) assert.equal(d.flag_aa, c.aa);
    const ips = (d.answers ?? []).map((a) => (a as { data: unknown }).data);
    assert.deepEqual(ips, c.ip ? [c.ip] : []);
  });
}

test('dns answer: the reply carries the query id and question', () => {
  const out = answer(query('dev.vm', 'A', 4242), recs());
  const d = dnsPacket.decode(out as Buffer);
  assert.equal(d.id, 4242);
  assert.deepEqual(
    d.questions?.map((q) => q.name),
    ['dev.vm'],
  );
});

test('dns answer: random bytes never throw (bounded fuzz)', () => {
  let seed = 12345;
  const next = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const base = query('dev.vm');
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.from(i % 2 ? base : Buffer.alloc(12 + (next() % 200)));
    for (let k = 0; k < 1 + (next() % 8); k++) b[next() % b.length] = next() & 0xff;
    answer(b, recs());
  }
});

test('records: set/remove/replaceAll, bad values refused naming them, replaceAll atomic', () => {
  const r = recs();
  assert.throws(() => r.set('dev', '300.1.1.1'), /not an IPv4 address for dev\.vm: "300\.1\.1\.1"/);
  assert.throws(() => r.set('bad name', '10.0.0.1'), /not a DNS name for a VM: "bad name"/);
  r.remove('dev');
  assert.equal(r.lookup('dev'), undefined);
  assert.throws(() =>
    r.replaceAll([
      ['a', '10.0.0.2'],
      ['-x', '10.0.0.3'],
    ]),
  );
  assert.deepEqual(r.entries(), [['web-1', '172.16.0.3']], 'a failed replaceAll changes nothing');
  r.replaceAll([['b', '10.0.0.4']]);
  assert.deepEqual(r.entries(), [['b', '10.0.0.4']]);
});

test('parseListen: IPv4:port only, errors name the value', () => {
  assert.deepEqual(parseListen('127.0.0.1:42069'), { host: '127.0.0.1', port: 42069 });
  assert.throws(() => parseListen('localhost:53'), /invalid dns_listen "localhost:53"/);
  assert.throws(() => parseListen('127.0.0.1:0'), /invalid dns_listen/);
});

function ask(port: number, msg: Buffer, timeoutMs = 2000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      resolve(undefined);
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.send(msg, port, '127.0.0.1');
  });
}

test('VmDnsServer over loopback UDP: answers, survives garbage, follows record changes, stops', async (t) => {
  const server = anyPort();
  const { port } = await server.start();
  t.after(() => server.stop());
  server.records.set('dev', '172.16.0.2');

  const a = await ask(port, query('dev.vm'));
  assert.ok(a);
  assert.deepEqual(
    dnsPacket.decode(a).answers?.map((x) => (x as { data: unknown }).data),
    ['172.16.0.2'],
  );
  assert.equal(await ask(port, Buffer.from('garbage!'), 300), undefined, 'garbage gets no answer');
  server.records.remove('dev');
  const b = await ask(port, query('dev.vm'));
  assert.equal(rcodeOf(b as Buffer), 'NXDOMAIN', 'removed name is NXDOMAIN, the server is still up');
});

test('VmDnsServer: a taken port is a clear error naming dns_listen', async (t) => {
  const first = anyPort();
  const { port } = await first.start();
  t.after(() => first.stop());
  const second = new VmDnsServer(`127.0.0.1:${port}`);
  await assert.rejects(second.start(), new RegExp(`cannot listen for DNS on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
});

/** A server on a kernel-chosen loopback port (dns_listen itself refuses port 0). */
const anyPort = (): VmDnsServer => new VmDnsServer({ host: '127.0.0.1', port: 0 });

test('probeDns: banger answering, nothing listening, another server', async (t) => {
  const server = anyPort();
  const { port } = await server.start();
  t.after(() => server.stop());
  assert.deepEqual(await probeDns(`127.0.0.1:${port}`), { state: 'answering' });

  const other = createSocket('udp4');
  await new Promise<void>((r) => other.bind(0, '127.0.0.1', () => r()));
  t.after(() => other.close());
  const otherPort = other.address().port;
  assert.deepEqual(await probeDns(`127.0.0.1:${otherPort}`, 200), { state: 'silent' }, 'bound but silent');
  other.on('message', (m, from) => {
    const q = dnsPacket.decode(m);
    other.send(
      dnsPacket.encode({ type: 'response', id: q.id ?? 0, flags: 2, questions: q.questions ?? [] }),
      from.port,
      from.address,
    );
  });
  const p = await probeDns(`127.0.0.1:${otherPort}`);
  assert.equal(p.state, 'other');
  assert.match((p as { detail: string }).detail, /rcode 2/);
});
