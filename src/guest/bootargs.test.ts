import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootArgs, macFromId } from './bootargs.js';

const base = {
  hostname: 'dev',
  ip: '10.0.2.15/24',
  gateway: '10.0.2.2',
  dns: '10.0.2.3',
  mac: '52:54:00:01:02:03',
  hasModulesDisk: true,
};

test('boot args carry identity as banger.* parameters', () => {
  const args = bootArgs({ ...base, tscKhz: undefined }).split(' ');
  for (const want of [
    'console=ttyS0',
    'panic=-1',
    'banger.root=banger-root',
    'banger.work=banger-work',
    'banger.modules=banger-modules',
    'banger.hostname=dev',
    'banger.ip=10.0.2.15/24',
    'banger.gw=10.0.2.2',
    'banger.dns=10.0.2.3',
    'banger.mac=52:54:00:01:02:03',
  ]) {
    assert.ok(args.includes(want), want);
  }
  assert.ok(!args.some((a) => a.startsWith('tsc_early_khz')), 'no TSC hint without TCG');
});

test('TCG timer hint: tsc_early_khz and lpj = kHz*1000/HZ', () => {
  const cases = [
    { khz: 2096011, hz: undefined, lpj: 8384044 },
    { khz: 3000000, hz: 1000, lpj: 3000000 },
  ];
  for (const c of cases) {
    const args = bootArgs({ ...base, tscKhz: c.khz, ...(c.hz ? { hz: c.hz } : {}) }).split(' ');
    assert.ok(args.includes(`tsc_early_khz=${c.khz}`));
    assert.ok(args.includes(`lpj=${c.lpj}`));
  }
});

test('no modules disk → no banger.modules', () => {
  assert.ok(!bootArgs({ ...base, hasModulesDisk: false, tscKhz: undefined }).includes('banger.modules'));
});

test('MACs are locally administered and stable per id', () => {
  assert.equal(macFromId('a1b2c3d4'), '52:54:00:a1:b2:c3');
  assert.equal(macFromId('a1b2c3d4'), macFromId('a1b2c3d4'));
  assert.match(macFromId('zz'), /^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
});

test('no dns (bridge mode with nothing answering on the bridge) → no banger.dns; the image keeps its resolv.conf', () => {
  const { dns: _dns, ...noDns } = base;
  assert.ok(!bootArgs({ ...noDns, tscKhz: undefined }).includes('banger.dns'));
});

test('a template boot adds banger.template=1; other boots do not', () => {
  assert.ok(
    bootArgs({ ...base, tscKhz: undefined, template: true })
      .split(' ')
      .includes('banger.template=1'),
  );
  assert.ok(
    bootArgs({ ...base, tscKhz: undefined, template: true })
      .split(' ')
      .includes('systemd.show_status=error'),
  );
  assert.ok(!bootArgs({ ...base, tscKhz: undefined }).includes('banger.template'));
  assert.ok(!bootArgs({ ...base, tscKhz: undefined }).includes('show_status'));
  assert.ok(!bootArgs({ ...base, tscKhz: undefined, template: false }).includes('banger.template'));
});
