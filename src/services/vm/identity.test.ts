import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Identity } from '../../agent/payloads.js';
import { nullLogger } from '../context.js';
import { freshIdentity, newMachineId, refreshIdentity, reseedBeforeSave, restoreIdentity } from './identity.js';

function recorder(): { agent: { setIdentity: (i: Identity) => Promise<void> }; sent: Identity[] } {
  const sent: Identity[] = [];
  return { agent: { setIdentity: async (i) => void sent.push(i) }, sent };
}

const net = { ip: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3', mac: '52:54:00:0a:0b:0c' };

test('refreshIdentity sends every part in one SET_IDENTITY, reseed and gate included', async () => {
  const { agent, sent } = recorder();
  const fresh = freshIdentity('vm-1', net);
  await refreshIdentity(agent, { ...fresh, openGate: true, reseed: true });
  assert.deepEqual(sent, [
    {
      hostname: 'vm-1',
      entropy: fresh.entropy,
      machineId: fresh.machineId,
      clockNs: fresh.clockNs,
      network: net,
      reseed: true,
      openGate: true,
    },
  ]);
  assert.equal(fresh.entropy.length, 256);
});

test('refreshIdentity without reseed is refused unless the test-only knob is set', async () => {
  const { agent, sent } = recorder();
  const input = { ...freshIdentity('vm-1', undefined), openGate: false, reseed: false };
  await assert.rejects(refreshIdentity(agent, input), /without reseeding the guest RNG is test-only/);
  assert.equal(sent.length, 0);
  await refreshIdentity(agent, input, { testSkipReseed: true });
  assert.equal(sent[0]?.reseed, false);
  assert.equal('network' in sent[0]!, false);
});

test('machine-ids are fresh, 32 hex digits, v4-marked', () => {
  const a = newMachineId();
  assert.match(a, /^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
  assert.notEqual(a, newMachineId());
});

test('restoreIdentity: the gate opens and the CRNG reseeds; the test-only knobs skip the reseed and ask for the RNG sample', async () => {
  const cases: [{ testSkipReseed?: boolean; testRngSample?: boolean }, boolean, boolean][] = [
    [{}, true, false],
    [{ testRngSample: true }, true, true],
    [{ testSkipReseed: true, testRngSample: true }, false, true],
  ];
  for (const [cfg, reseed, sample] of cases) {
    const i = restoreIdentity('vm-1', net, cfg);
    assert.deepEqual([i.openGate, i.reseed, i.rngSample], [true, reseed, sample], JSON.stringify(cfg));
    const { agent, sent } = recorder();
    await refreshIdentity(agent, i, cfg);
    assert.equal(sent[0]?.rngSample, sample ? true : undefined);
  }
});

test('reseedBeforeSave sends host entropy and the reseed only; a refusal is a warning, not a failure', async () => {
  const { agent, sent } = recorder();
  await reseedBeforeSave(agent, nullLogger);
  assert.deepEqual(Object.keys(sent[0] ?? {}).sort(), ['entropy', 'reseed']);
  assert.equal(sent[0]?.reseed, true);
  const warned: string[] = [];
  const log = { ...nullLogger, warn: (m: string) => void warned.push(m) };
  await reseedBeforeSave({ setIdentity: () => Promise.reject(new Error('ENODATA')) }, log);
  assert.deepEqual(warned, ['the template guest did not reseed its CRNG before the save']);
});
