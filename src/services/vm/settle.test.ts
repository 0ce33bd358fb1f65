import assert from 'node:assert/strict';
import { test } from 'node:test';
import { busyUnits, parseJobs } from './settle.js';

test('list-jobs: what still runs, the gate and jobs waiting behind it aside', () => {
  const cases: { name: string; out: string; busy: string[] }[] = [
    { name: 'empty queue', out: '', busy: [] },
    { name: 'no jobs text', out: 'No jobs running.\n', busy: [] },
    {
      name: 'only gated work left',
      out: [
        '  42 banger-gate.service          start running',
        '  57 ssh.service                  start waiting',
        '   1 multi-user.target            start waiting',
        '  60 systemd-machine-id-commit.service start waiting',
      ].join('\n'),
      busy: [],
    },
    {
      name: 'boot still going',
      out: [
        '  42 banger-gate.service          start running',
        '  71 systemd-udev-trigger.service start running',
        '  80 systemd-logind.service       start waiting',
      ].join('\n'),
      busy: ['systemd-udev-trigger.service'],
    },
    { name: 'a reload running', out: '9 dbus.service reload running\n', busy: ['dbus.service'] },
    { name: 'header-like and short lines are ignored', out: 'JOB UNIT TYPE STATE\nfoo bar\n', busy: [] },
  ];
  for (const c of cases) assert.deepEqual(busyUnits(c.out), c.busy, c.name);
  assert.deepEqual(parseJobs('  7 a.service start running\n'), [{ unit: 'a.service', state: 'running' }]);
});
