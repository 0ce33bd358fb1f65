import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProcStat } from './process.js';

/** A /proc/<pid>/stat line: pid (comm) then fields 3..; utime, stime at 14, 15 and rss at 24. */
function statLine(comm: string, utime: string, stime: string, rss: string): string {
  const f = Array.from({ length: 50 }, (_, i) => String(i + 3));
  f[0] = 'S';
  f[11] = utime;
  f[12] = stime;
  f[21] = rss;
  return `4242 (${comm}) ${f.join(' ')}\n`;
}

test('parseProcStat: cpu seconds (utime + stime at 100 Hz) and rss bytes, whatever the command name holds', () => {
  const cases: [string, string, { cpuSeconds: number; rssBytes: number } | undefined][] = [
    ['qemu', statLine('qemu-system-x86', '250', '50', '1000'), { cpuSeconds: 3, rssBytes: 4_096_000 }],
    ['zero', statLine('qemu', '0', '0', '0'), { cpuSeconds: 0, rssBytes: 0 }],
    ['spaces and parens in comm', statLine('a) (b c)', '7', '3', '1'), { cpuSeconds: 0.1, rssBytes: 4096 }],
    ['no comm', '4242 S 1 2 3', undefined],
    ['truncated', '4242 (qemu) S 1 2 3 4 5', undefined],
    ['not numbers', statLine('qemu', 'x', '3', '1'), undefined],
    ['negative', statLine('qemu', '-1', '3', '1'), undefined],
    ['empty', '', undefined],
  ];
  for (const [name, text, want] of cases) assert.deepEqual(parseProcStat(text), want, name);
});

test('parseProcStat: this process', async () => {
  const { readFileSync } = await import('node:fs');
  const got = parseProcStat(readFileSync('/proc/self/stat', 'utf8'));
  assert.ok(got && got.cpuSeconds >= 0 && got.rssBytes > 0, JSON.stringify(got));
});
