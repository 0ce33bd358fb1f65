import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/*
 * Rules about the tree itself (issue 11), checked on the sources so they stay true:
 * no non-test source file under src/ over MAX_LINES lines, no fakes under src/
 * (they live in test/fakes/), and every contract-document reference in a comment
 * resolves to a file in docs/.
 */

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MAX_LINES = 450;

function walk(dir: string): string[] {
  return readdirSync(join(REPO, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

const lineCount = (text: string): number => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
const isTest = (path: string): boolean => path.endsWith('.test.ts');

test(`no source file under src/ (tests excepted) is over ${MAX_LINES} lines`, () => {
  const sizes = walk('src')
    .filter((p) => p.endsWith('.ts') && !isTest(p))
    .map((p) => ({ path: p, lines: lineCount(readFileSync(join(REPO, p), 'utf8')) }));
  const offenders = sizes.filter((f) => f.lines > MAX_LINES).map((f) => `${f.path}: ${f.lines} lines`);
  assert.deepEqual(offenders, [], `split these files to ${MAX_LINES} lines or fewer:\n${offenders.join('\n')}`);
});

test('no file under src/ is a fake (fakes live in test/fakes/)', () => {
  const fakes = walk('src').filter((p) => /fake/i.test(p.slice(p.lastIndexOf('/') + 1)));
  assert.deepEqual(fakes, [], `move these to test/fakes/:\n${fakes.join('\n')}`);
});

/** Section numbers of docs/SPEC.md's headings ("## 6. Images" → 6, "### 6.1 OCI pull" → 6.1). */
function specSections(): Set<string> {
  const text = readFileSync(join(REPO, 'docs/SPEC.md'), 'utf8');
  return new Set([...text.matchAll(/^#{2,4} (\d+(?:\.\d+)*)\.? /gm)].map((m) => m[1] ?? ''));
}

test('every contract-document reference in the code resolves to a file in docs/', () => {
  const sections = specSections();
  assert.ok(sections.has('6.1'), 'docs/SPEC.md headings were not parsed');
  const problems: string[] = [];
  const sources = ['src', 'test', 'scripts', 'guest-src'].flatMap(walk).filter((p) => /\.(ts|c|h|sh|mjs)$/.test(p));
  for (const path of sources) {
    const text = readFileSync(join(REPO, path), 'utf8');
    for (const m of text.matchAll(/SPEC §\s?(\d+(?:\.\d+)*)/g)) {
      if (!sections.has(m[1] ?? '')) problems.push(`${path}: "${m[0]}" names no section of docs/SPEC.md`);
    }
    for (const m of text.matchAll(/\bdocs\/([\w.-]+\.md)/g)) {
      const name = m[1] ?? '';
      if (!readdirSync(join(REPO, 'docs')).includes(name)) problems.push(`${path}: docs/${name} does not exist`);
    }
    for (const m of text.matchAll(/(?<![\w/.-])(?:spec\/)?(SPEC|TESTING|BENCHMARKS|SMOKE)\.md/g)) {
      problems.push(`${path}: "${m[0]}" is not a path in the repo; cite docs/${m[1]}.md`);
    }
  }
  assert.deepEqual(problems, [], problems.join('\n'));
});
