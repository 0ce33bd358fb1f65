import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../errors.js';
import { NodeRunner } from '../system/node-runner.js';
import { BOOTSTRAP_EXIT, bootstrapArgv, bootstrapDecision, bootstrapOutcome, toolFiles } from './bootstrap.js';

const runner = new NodeRunner();

function tmp(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'banger-boot-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('toolFiles: mise config and .tool-versions at the top of the shipped files', () => {
  const cases: [string[], string[]][] = [
    [['a.txt', 'src/x.ts'], []],
    [['.tool-versions', 'a'], ['.tool-versions']],
    [
      ['.mise.toml', 'mise.toml'],
      ['.mise.toml', 'mise.toml'],
    ],
    [['sub/.mise.toml'], []],
  ];
  for (const [files, want] of cases) assert.deepEqual(toolFiles(files), want, files.join());
});

test('bootstrapDecision: refuses without --nat (naming the files, hinting --nat and --no-bootstrap); --no-bootstrap skips', () => {
  const cases: [string[], { nat?: boolean; bootstrap?: boolean }, boolean | 'refused'][] = [
    [[], {}, false],
    [[], { nat: true }, false],
    [['.tool-versions'], {}, 'refused'],
    [['.tool-versions'], { bootstrap: true }, 'refused'],
    [['.mise.toml'], { bootstrap: false }, false],
    [['.mise.toml'], { nat: true, bootstrap: false }, false],
    [['.mise.toml'], { nat: true }, true],
  ];
  for (const [found, flags, want] of cases) {
    const what = `${found.join()} ${JSON.stringify(flags)}`;
    if (want === 'refused') {
      assert.throws(
        () => bootstrapDecision(found, flags),
        (e: unknown) =>
          e instanceof AppError &&
          e.code === 'bad_request' &&
          e.message.includes(found.join(', ')) &&
          /--nat/.test(e.hint ?? '') &&
          /--no-bootstrap/.test(e.hint ?? ''),
        what,
      );
    } else assert.equal(bootstrapDecision(found, flags), want, what);
  }
});

test('bootstrapOutcome: no mise and a failed install are warnings; success is a note', () => {
  const cases: [number, boolean, boolean, RegExp][] = [
    [BOOTSTRAP_EXIT.noMise, false, true, /^warning: .*VM dev has no mise: tools not installed/],
    [BOOTSTRAP_EXIT.failed, false, true, /^warning: mise install failed in VM dev; see dev:\/root\/.cache/],
    [1, true, true, /^warning: the bootstrap failed \(exit 1\)/],
    [0, false, false, /^bootstrap: mise install done in dev/],
    [0, true, false, /^bootstrap: mise install runs in the background in dev/],
  ];
  for (const [code, bg, warning, line] of cases) {
    const o = bootstrapOutcome('dev', code, bg);
    assert.equal(o.warning, warning, String(code));
    assert.match(o.line, line, String(code));
  }
});

/** The guest script run here, with PATH holding only `bin` (and sh's own directories). */
async function runScript(d: string, background: boolean, mise?: string): Promise<number> {
  const bin = join(d, 'bin');
  mkdirSync(bin, { recursive: true });
  if (mise !== undefined) {
    writeFileSync(join(bin, 'mise'), `#!/bin/sh\n${mise}\n`);
    chmodSync(join(bin, 'mise'), 0o755);
  }
  const r = await runner.run(bootstrapArgv(d, background, join(d, 'log', 'mise.log')), {
    env: { PATH: `${bin}:/usr/bin:/bin` },
  });
  return r.code;
}

test('the bootstrap script: no mise → its own exit status, nothing run', async (t) => {
  const d = tmp(t);
  assert.ok(!existsSync('/usr/bin/mise') && !existsSync('/bin/mise'), 'this host has no mise on the PATH used');
  assert.equal(await runScript(d, false), BOOTSTRAP_EXIT.noMise);
  assert.ok(!existsSync(join(d, 'log')));
});

test('the bootstrap script: mise install runs in the repo with its config trusted, logged; a failure is reported', async (t) => {
  const d = tmp(t);
  assert.equal(await runScript(d, false, 'echo "$1 in $(pwd) trusted=$MISE_TRUSTED_CONFIG_PATHS yes=$MISE_YES"'), 0);
  assert.equal(readFileSync(join(d, 'log', 'mise.log'), 'utf8'), `install in ${d} trusted=${d} yes=1\n`);
  assert.equal(await runScript(d, false, 'echo nope >&2; exit 3'), BOOTSTRAP_EXIT.failed);
  assert.equal(readFileSync(join(d, 'log', 'mise.log'), 'utf8'), 'nope\n');
});

test('the bootstrap script: in the background it returns at once and the install still runs', async (t) => {
  const d = tmp(t);
  const marker = join(d, 'done');
  assert.equal(await runScript(d, true, `sleep 0.2; echo installed; touch ${marker}`), 0);
  for (let i = 0; i < 100 && !existsSync(marker); i++) await sleep(50);
  assert.ok(existsSync(marker), 'the background install finished within 5 s');
  for (let i = 0; i < 20 && readFileSync(join(d, 'log', 'mise.log'), 'utf8') === ''; i++) await sleep(50);
  assert.equal(readFileSync(join(d, 'log', 'mise.log'), 'utf8'), 'installed\n');
});
