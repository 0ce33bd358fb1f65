import { spawn } from 'node:child_process';
import { BANGER, type CliResult } from './home.js';

/** Runs the CLI with `input` on its stdin (a pipe, closed after it); killed after timeoutMs. */
export function bangerInput(
  env: Record<string, string>,
  args: readonly string[],
  input: string,
  timeoutMs = 120_000,
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BANGER, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Drives `banger vm ssh NAME` on a terminal of 33x101 made by script(1). */
export function ptySession(
  env: Record<string, string>,
  name: string,
): {
  send(s: string): void;
  waitFor(re: RegExp, ms: number): Promise<void>;
  exited: Promise<number>;
  output(): string;
} {
  const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
  const cmd = `stty rows 33 cols 101; exec ${q(process.execPath)} ${q(BANGER)} vm ssh ${q(name)}`;
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let waiters: (() => void)[] = [];
  const onData = (d: Buffer): void => {
    out += d.toString();
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  const kill = setTimeout(() => child.kill('SIGKILL'), 300_000);
  void exited.then(() => clearTimeout(kill));
  return {
    send: (s) => child.stdin.write(s),
    output: () => out,
    exited,
    waitFor: (re, ms) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${String(re)} within ${ms} ms; output:\n${out}`)), ms);
        const check = (): void => {
          if (re.test(out)) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      }),
  };
}
