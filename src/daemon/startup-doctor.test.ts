import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Logger } from '../services/context.js';
import { logDoctorRows } from './startup-doctor.js';

function recorder(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    void lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  return { log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

test('every doctor row is logged at its level, with the fix for non-PASS rows, then a count', async () => {
  const { log, lines } = recorder();
  await logDoctorRows(
    async () => [
      { name: 'architecture', status: 'PASS', detail: 'x86_64', fix: 'unused' },
      { name: 'hardware virtualization', status: 'WARN', detail: 'TCG', fix: 'enable VT-x' },
      { name: 'qemu', status: 'FAIL', detail: 'not found', fix: 'apt-get install qemu-system-x86' },
    ],
    log,
  );
  assert.deepEqual(lines, [
    'info doctor {"check":"architecture","status":"PASS","detail":"x86_64"}',
    'warn doctor {"check":"hardware virtualization","status":"WARN","detail":"TCG","fix":"enable VT-x"}',
    'error doctor {"check":"qemu","status":"FAIL","detail":"not found","fix":"apt-get install qemu-system-x86"}',
    'info doctor finished {"pass":1,"warn":1,"fail":1}',
  ]);
});

test('a doctor that throws or rejects is logged as a warning and never rejects', async () => {
  const { log, lines } = recorder();
  await logDoctorRows(() => {
    throw new Error('boom');
  }, log);
  await logDoctorRows(() => Promise.reject(new Error('later boom')), log);
  assert.deepEqual(lines, [
    'warn doctor could not run at start {"error":"boom"}',
    'warn doctor could not run at start {"error":"later boom"}',
  ]);
});
