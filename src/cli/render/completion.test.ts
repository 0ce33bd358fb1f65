import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bashCompletion, completionTree, zshCompletion } from './completion.js';

interface FakeCmd {
  name(): string;
  options: { long?: string }[];
  commands: FakeCmd[];
}
const cmd = (name: string, flags: string[], children: FakeCmd[] = []): FakeCmd => ({
  name: () => name,
  options: flags.map((f) => ({ long: f })),
  commands: children,
});

test('completion tree and scripts name verbs, flags and dynamic names', () => {
  const root = cmd(
    'banger',
    ['--version'],
    [cmd('vm', [], [cmd('run', ['--name', '--rm']), cmd('stop', [])]), cmd('__names', [])],
  );
  const tree = completionTree(root);
  assert.deepEqual(
    tree.children.map((c) => c.name),
    ['vm'],
  );
  const stop = tree.children[0]?.children.find((c) => c.name === 'stop');
  assert.equal(stop?.args, 'vms');
  const bash = bashCompletion(tree);
  assert.match(bash, /"vm run"\) words="--name --rm"/);
  assert.match(bash, /"vm stop"\) words=""; dyn="\$\(banger __names vms 2>\/dev\/null\)"/);
  assert.match(bash, /complete -F _banger banger/);
  assert.match(zshCompletion(tree), /bashcompinit/);
});
