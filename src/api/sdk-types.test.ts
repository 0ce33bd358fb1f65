import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { generateSdkTypes, SDK_COPIED, sdkCopy, SDK_TYPE_ROOTS, SDK_TYPES_FILE } from './sdk-types.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const sources = (): Record<string, string> =>
  Object.fromEntries(Object.keys(SDK_TYPE_ROOTS).map((f) => [f, readFileSync(join(REPO, 'src', 'api', f), 'utf8')]));

test("the SDK's generated contract types are what src/api makes (else: node dist/scripts/gen-sdk-types.js)", () => {
  const want = generateSdkTypes(sources());
  const have = readFileSync(join(REPO, SDK_TYPES_FILE), 'utf8');
  assert.equal(have, want);
});

test("the SDK's copies of pure src/api modules are current (else: npm run gen:sdk-types)", () => {
  assert.ok(Object.keys(SDK_COPIED).length > 0);
  for (const [from, to] of Object.entries(SDK_COPIED))
    assert.equal(readFileSync(join(REPO, to), 'utf8'), sdkCopy(from, readFileSync(join(REPO, from), 'utf8')), to);
  assert.throws(() => sdkCopy('x.ts', "import { z } from 'zod';\n"), /imports other modules/);
});

test('the generator follows references, keeps doc comments, and refuses what it cannot resolve', () => {
  const out = generateSdkTypes({
    'views.ts': [
      '/** A VM. */',
      'export interface VmView { ws: WorkspaceView | null; m: Record<string, number> }',
      'export interface WorkspaceView { head: string }',
      'export interface VmPorts { ports: VmPort[] }',
      'export interface VmPort { port: number }',
      'export interface Unused { x: 1 }',
    ].join('\n'),
    'proc-contract.ts': [
      "import { z } from 'zod';",
      "export type ProcState = 'running' | 'exited';",
      'export interface ProcStatus { state: ProcState }',
      'export interface ProcView extends ProcStatus { argv: string[] }',
      'export interface ProcRead extends ProcStatus {}',
      'export interface ProcExecResult extends ProcStatus {}',
      'export interface FsReadResult {}',
      'export interface FsWriteResult {}',
      'export interface FsListResult { entries: FsEntry[] }',
      'export interface FsEntry { name: string }',
    ].join('\n'),
  });
  assert.match(out, /\/\*\* A VM\. \*\/\nexport interface VmView/);
  assert.match(out, /export type ProcState = 'running' \| 'exited';/);
  assert.match(out, /export interface FsEntry/);
  assert.doesNotMatch(out, /Unused|zod/);
  assert.throws(
    () =>
      generateSdkTypes({
        'views.ts':
          'export interface VmView { x: Missing } export interface VmPorts {} export interface VmPort {} export interface WorkspaceView {}',
        'proc-contract.ts': '',
      }),
    /VmView uses Missing/,
  );
});
