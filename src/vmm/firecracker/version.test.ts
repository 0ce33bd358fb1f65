import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkFirecrackerVersion } from './version.js';

test('firecracker version: parsed from --version output and checked against 1.5.0', () => {
  const cases: { text: string; version: string; ok: boolean; message?: RegExp }[] = [
    { text: 'Firecracker v1.7.0\n\nSupported snapshot data format versions: v1.0.0\n', version: '1.7.0', ok: true },
    { text: 'Firecracker v1.5.0\n', version: '1.5.0', ok: true },
    { text: 'Firecracker v1.10.1\n', version: '1.10.1', ok: true },
    { text: 'Firecracker v2.0.0', version: '2.0.0', ok: true },
    {
      text: 'Firecracker v1.4.1\n',
      version: '1.4.1',
      ok: false,
      message: /1\.4\.1 is too old; banger needs 1\.5\.0 or later/,
    },
    { text: 'Firecracker v0.25.2\n', version: '0.25.2', ok: false, message: /too old/ },
    { text: 'Firecracker v1.5.0-dev\n', version: '1.5.0-dev', ok: false, message: /too old/ },
    { text: 'Firecracker v1.8.0-dev\n', version: '1.8.0-dev', ok: true },
    { text: '1.7.0', version: '1.7.0', ok: true },
    { text: '\n  Firecracker v1.6.0  \n', version: '1.6.0', ok: true },
    {
      text: 'firecracker: command not found',
      version: '',
      ok: false,
      message: /cannot find a version.*command not found/,
    },
    { text: '', version: '', ok: false, message: /cannot find a version in firecracker's output$/ },
    { text: 'Firecracker v1.7', version: '', ok: false, message: /cannot find a version/ },
  ];
  for (const c of cases) {
    const r = checkFirecrackerVersion(c.text);
    assert.equal(r.version, c.version, c.text);
    assert.equal(r.ok, c.ok, c.text);
    if (c.message) assert.match(r.message ?? '', c.message, c.text);
    else assert.equal(r.message, undefined, c.text);
  }
});
