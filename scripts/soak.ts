/**
 * `npm run soak -- --boots N`: N consecutive `banger vm run --rm -- true`,
 * reporting each boot's time and outcome, then a summary. Uses the caller's
 * banger home (XDG variables) so the image and kernel are reused. Not part of CI.
 * Network: user mode, loopback only.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const banger = join(repo, 'bin', 'banger.js');

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1 || v > 1000) {
    console.error(`soak: ${name} must be a whole number from 1 to 1000`);
    process.exit(2);
  }
  return v;
}

function run(args: string[], timeoutMs: number): Promise<{ code: number; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [banger, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stderr, ms: Date.now() - t0 });
    });
  });
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

async function main(): Promise<void> {
  const boots = arg('--boots', 20);
  const times: number[] = [];
  const failures: string[] = [];
  for (let i = 1; i <= boots; i++) {
    const r = await run(['vm', 'run', '--rm', '--', 'true'], 10 * 60_000);
    const ready = /ready in (\S+)/.exec(r.stderr)?.[1] ?? '-';
    if (r.code === 0) {
      times.push(r.ms);
      console.log(`boot ${i}/${boots}: ok in ${(r.ms / 1000).toFixed(1)}s (ready in ${ready})`);
    } else {
      const why =
        r.stderr
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('banger:'))[0] ??
        r.stderr.trim().split('\n').pop() ??
        '';
      failures.push(`boot ${i}: exit ${r.code}: ${why}`);
      console.log(`boot ${i}/${boots}: FAILED (exit ${r.code}) ${why}`);
    }
  }
  console.log('');
  console.log(`soak: ${times.length} of ${boots} boots succeeded`);
  if (times.length) {
    console.log(
      `end-to-end vm run --rm -- true: median ${(pct(times, 50) / 1000).toFixed(1)}s, p90 ${(pct(times, 90) / 1000).toFixed(1)}s, max ${(Math.max(...times) / 1000).toFixed(1)}s`,
    );
  }
  for (const f of failures) console.log(`  ${f}`);
  process.exit(failures.length ? 1 : 0);
}

void main();
