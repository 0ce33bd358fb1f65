import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fastLinkTarget, parseLsP, splitByCommand } from './listing.js';

// Captured from debugfs 1.47.0 (`printf 'ls -p <2>\nls -p <17>\n' | debugfs -f - img`).
const CAPTURED = `debugfs: ls -p <2>
/2/040755/0/0/.//
/2/040755/0/0/..//
/11/040700/0/0/lost+found//
/12/040755/0/0/root//

debugfs: ls -p <17>
/17/040755/0/0/.//
/12/040755/0/0/..//
/13/100644/1000/1000/hl/3/
/14/120777/0/0/fast/5/
/15/010644/0/0/fifo/0/
`;

test('splitByCommand and parseLsP read captured debugfs output', () => {
  const [root, sub] = splitByCommand(CAPTURED, ['ls -p <2>', 'ls -p <17>']);
  assert.deepEqual(
    parseLsP(root as string).map((e) => [e.ino, e.name, e.type, e.mode]),
    [
      [11, 'lost+found', 'dir', 0o700],
      [12, 'root', 'dir', 0o755],
    ],
  );
  assert.deepEqual(parseLsP(sub as string), [
    { ino: 13, mode: 0o644, type: 'file', uid: 1000, gid: 1000, name: 'hl', size: 3 },
    { ino: 14, mode: 0o777, type: 'symlink', uid: 0, gid: 0, name: 'fast', size: 5 },
    { ino: 15, mode: 0o644, type: 'other', uid: 0, gid: 0, name: 'fifo', size: 0 },
  ]);
});

const badLines: { name: string; line: string }[] = [
  { name: 'a name with a newline (first fragment)', line: '/13/100644/0/0/a' },
  { name: 'a forged continuation', line: 'b/3/' },
  { name: 'a mode that is not octal', line: '/13/10064x/0/0/a/3/' },
  { name: 'a file without size', line: '/13/100644/0/0/a//' },
  { name: 'garbage', line: 'ls: bad inode' },
];
for (const c of badLines) {
  test(`parseLsP refuses ${c.name}`, () => {
    assert.throws(() => parseLsP(`${c.line}\n`), /unparseable|has no size/);
  });
}

test('splitByCommand refuses output that does not echo every command in order', () => {
  assert.throws(() => splitByCommand('debugfs: ls -p <2>\n', ['ls -p <2>', 'ls -p <3>']), /ended after 1 of 2/);
  assert.throws(() => splitByCommand('junk\ndebugfs: ls -p <2>\n', ['ls -p <2>']), /before the first command/);
  // A forged echo for a later command is just a line of the current section; the real one still has to come.
  assert.throws(
    () => splitByCommand('debugfs: ls -p <3>\ndebugfs: ls -p <2>\n', ['ls -p <2>', 'ls -p <3>']),
    /before the first command/,
  );
});

test('fastLinkTarget takes exactly size bytes, so quotes and newlines in a target cannot confuse it', () => {
  const out = Buffer.from('Inode: 14   Type: symlink\nFast link dest: "a"\nb"\n');
  assert.equal(fastLinkTarget(out, 4)?.toString(), 'a"\nb');
  assert.equal(fastLinkTarget(Buffer.from('Inode: 16   Type: symlink\n'), 100), undefined);
  assert.throws(() => fastLinkTarget(out, 2), /does not match its size/);
});
