import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

/*
 * The one place integration tests decide whether they can run on this host.
 * Locally a missing tool or privilege skips the tests, saying why. When the
 * environment has CI=true (CI sets it, and so does .ci/run) nothing may be
 * skipped quietly: the file gets a failing test that names what is missing.
 */

/** True when the environment says this is a CI run (CI=true or CI=1). */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(true|1)$/i.test(env.CI ?? '');
}

/** Whether `tool` is on PATH or in /usr/sbin or /sbin (not always on a user's PATH). */
export function hasTool(tool: string): boolean {
  if (!/^[A-Za-z0-9._+-]+$/.test(tool)) throw new Error(`not a program name: ${JSON.stringify(tool)}`);
  return (
    spawnSync('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool} || test -x /sbin/${tool}`], {
      stdio: 'ignore',
    }).status === 0
  );
}

/** The tools of `tools` this host lacks, each checked on its own. */
export function missingTools(tools: readonly string[]): string[] {
  return tools.filter((t) => !hasTool(t));
}

/** What booting a VM of the built-in default image needs: mmdebstrap builds it, apt fetches the kernel. */
export const DEFAULT_VM_TOOLS: readonly string[] = [
  'qemu-system-x86_64',
  'qemu-img',
  'mmdebstrap',
  'mkfs.ext4',
  'debugfs',
  'ssh',
  'ssh-keygen',
  'apt-get',
  'apt-cache',
  'dpkg-deb',
  'depmod',
];

/** `['root privileges (<why>)']` unless this process runs as root. */
export function missingRoot(why: string): string[] {
  return process.getuid?.() === 0 ? [] : [`root privileges (${why})`];
}

/**
 * The `skip` option for the tests that need `missing` to be empty (what this
 * host lacks: programs, privileges, build outputs, an opt-out that is set).
 * `hint` says how to get what is missing (e.g. the apt packages).
 * Returns false when nothing is missing. Otherwise, locally, the reason (the
 * tests skip and say why); with CI=true it also registers a failing test that
 * names what is missing, so the run fails instead of passing on skips.
 */
export function requirements(missing: readonly string[], hint?: string): string | false {
  if (missing.length === 0) return false;
  const what = `${missing.join(', ')}${hint === undefined ? '' : ` (${hint})`}`;
  const reason = `needs ${what}`;
  if (isCi()) {
    test(`host requirements: ${missing.join(', ')}`, () => {
      assert.fail(`CI=true, so these tests may not be skipped; they need ${what}`);
    });
    return `CI=true: ${reason} (see the failing host-requirements test)`;
  }
  console.log(`skipping: ${reason}`);
  return reason;
}
