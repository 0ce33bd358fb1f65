import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './system/paths.js';

/**
 * "<package version>+<build id>": the CLI and daemon compare it on every
 * request. The build id is written by `npm run build` (scripts/build-info.mjs).
 */
export function bangerVersion(): string {
  const root = packageRoot();
  let version = '0.0.0';
  let build = 'dev';
  try {
    version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    /* keep default */
  }
  try {
    build = (JSON.parse(readFileSync(join(root, 'dist', 'build-info.json'), 'utf8')) as { build: string }).build;
  } catch {
    /* keep default */
  }
  return `${version}+${build}`;
}
