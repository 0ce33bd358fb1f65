import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NodeRunner } from '../system/node-runner.js';

/** guest-src/ from dist/src/guest/ (tests run from the built tree). */
const GUEST_SRC = fileURLToPath(new URL('../../../guest-src/', import.meta.url));

/** Calls banger-init's find_by_serial for each argument and prints "<found> <device>". */
const HARNESS = `#include <stdio.h>
#include "banger-init/init.h"
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    char out[300] = "";
    int found = find_by_serial(argv[i], out, sizeof out);
    printf("%d %s\\n", found, out);
  }
  return 0;
}
`;

test('banger-init find_by_serial: a /dev/ path (firecracker) is the device once it exists; a serial is searched', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'banger-init-'));
  const runner = new NodeRunner();
  try {
    writeFileSync(join(dir, 'harness.c'), HARNESS);
    const bin = join(dir, 'harness');
    const cc = await runner.run(
      [
        'gcc',
        '-Wall',
        '-Wextra',
        '-Werror',
        `-I${GUEST_SRC}`,
        '-o',
        bin,
        join(dir, 'harness.c'),
        join(GUEST_SRC, 'banger-init', 'common.c'),
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(cc.code, 0, cc.stderr);
    const cases = [
      { want: '/dev/null', out: '1 /dev/null' },
      { want: '/dev/banger-no-such-disk', out: '0 ' },
      // No host block device has this serial.
      { want: 'banger-no-such-serial', out: '0 ' },
    ];
    const r = await runner.run([bin, ...cases.map((c) => c.want)], { timeoutMs: 10_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout.split('\n').slice(0, -1),
      cases.map((c) => c.out),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
