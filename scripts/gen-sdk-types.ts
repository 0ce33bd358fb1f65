import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSdkTypes, SDK_COPIED, sdkCopy, SDK_TYPE_ROOTS, SDK_TYPES_FILE } from '../src/api/sdk-types.js';

/* Rewrites packages/sdk/src/generated/contract.ts from src/api (see src/api/sdk-types.ts); argv[2]: another repo root. */

const repo = process.argv[2] ?? fileURLToPath(new URL('../../', import.meta.url));
const sources = Object.fromEntries(
  Object.keys(SDK_TYPE_ROOTS).map((f) => [f, readFileSync(join(repo, 'src', 'api', f), 'utf8')]),
);
writeFileSync(join(repo, SDK_TYPES_FILE), generateSdkTypes(sources));
console.log(`wrote ${SDK_TYPES_FILE}`);
for (const [from, to] of Object.entries(SDK_COPIED)) {
  writeFileSync(join(repo, to), sdkCopy(from, readFileSync(join(repo, from), 'utf8')));
  console.log(`wrote ${to}`);
}
