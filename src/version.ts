import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './system/paths.js';

/**
 * "<package version>+<build id>": the CLI and daemon compare it on every
 * request. The build id is written by `npm run build` (scripts/build-info.mjs).
 *
 * TEST-ONLY: BANGER_TEST_VERSION=<v> in the environment replaces it, so an
 * integration test can run a CLI and daemon "of another version" from one
 * build (test/integration/version-swap.test.ts). A daemon a CLI starts
 * inherits the CLI's environment, so both sides of that pair agree.
 */
export function bangerVersion(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.BANGER_TEST_VERSION;
  if (override !== undefined && override !== '') return override;
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
