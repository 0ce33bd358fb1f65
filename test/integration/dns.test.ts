/**
 * Integration (network: loopback only): the `<name>.vm` server answered by
 * the real `dig`, on a loopback port the kernel picks for this test.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { VmDnsServer } from '../../src/services/network/dns.js';
import { NodeRunner } from '../../src/system/node-runner.js';
import { missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(missingTools(['dig']), 'apt install dnsutils');
const runner = new NodeRunner();
const server = new VmDnsServer({ host: '127.0.0.1', port: 0 });
let port = 0;

before(async () => {
  if (skip) return;
  ({ port } = await server.start());
  server.records.replaceAll([
    ['dev', '172.16.0.2'],
    ['web', '172.16.0.3'],
  ]);
});

after(() => server.stop());

async function dig(name: string, type = 'A'): Promise<{ status: string; flags: string; answers: string[] }> {
  const res = await runner.check(
    ['dig', `@127.0.0.1`, '-p', String(port), '+time=2', '+tries=1', '+noall', '+comments', '+answer', name, type],
    { timeoutMs: 10_000 },
  );
  const status = /status: (\w+)/.exec(res.stdout)?.[1] ?? `no status in: ${res.stdout}`;
  const flags = /;; flags: ([a-z ]+);/.exec(res.stdout)?.[1] ?? '';
  const answers = res.stdout
    .split('\n')
    .filter((l) => l && !l.startsWith(';'))
    .map((l) => l.split(/\s+/).slice(3).join(' '));
  return { status, flags, answers };
}

test('dig: each known name gets its A record, authoritative, no recursion offered', { skip }, async () => {
  const dev = await dig('dev.vm');
  assert.equal(dev.status, 'NOERROR');
  assert.deepEqual(dev.answers, ['A 172.16.0.2']);
  assert.match(dev.flags, /\baa\b/);
  assert.doesNotMatch(dev.flags, /\bra\b/);
  assert.deepEqual((await dig('web.vm')).answers, ['A 172.16.0.3']);
});

test('dig: unknown name is NXDOMAIN; after remove the name is NXDOMAIN', { skip }, async () => {
  assert.equal((await dig('nope.vm')).status, 'NXDOMAIN');
  server.records.remove('web');
  const web = await dig('web.vm');
  assert.equal(web.status, 'NXDOMAIN');
  assert.deepEqual(web.answers, []);
});

test('dig: a name outside .vm is REFUSED (no recursion)', { skip }, async () => {
  const r = await dig('example.com');
  assert.equal(r.status, 'REFUSED');
  assert.deepEqual(r.answers, []);
});
