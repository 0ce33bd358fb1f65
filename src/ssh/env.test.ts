import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseEnvFlags, withEnv } from './env.js';

test('-e flags', () => {
  assert.deepEqual(parseEnvFlags(['A=1', 'B_2=x=y', 'EMPTY=']), [
    ['A', '1'],
    ['B_2', 'x=y'],
    ['EMPTY', ''],
  ]);
  for (const bad of ['noequals', '=v', '1A=x', 'A-B=1', 'A B=1'])
    assert.throws(() => parseEnvFlags([bad]), /invalid -e/);
});

test('env prefix keeps values literal', () => {
  assert.equal(withEnv('printenv A', []), 'printenv A');
  assert.equal(withEnv('printenv A', [['A', 'a b $HOME']]), "env 'A=a b $HOME' printenv A");
});
