import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installInclude, renderSshConfig, uninstallInclude } from './config.js';

test('ssh_config has one block per VM keyed by <name>.vm', () => {
  const text = renderSshConfig([
    { name: 'b', host: '127.0.0.1', port: 2, key: '/k', knownHosts: '/kh' },
    { name: 'a', host: '127.0.0.1', port: 1, key: '/k', knownHosts: '/kh' },
  ]);
  assert.ok(text.indexOf('Host a.vm') < text.indexOf('Host b.vm'));
  assert.match(text, /Host a\.vm\n {2}HostName 127\.0\.0\.1\n {2}Port 1\n/);
  assert.match(text, /HostKeyAlias b\.vm/);
  assert.equal(renderSshConfig([]).split('\n').filter((l) => l.startsWith('Host ')).length, 0);
});

test('install is idempotent and uninstall restores the file byte for byte', () => {
  const originals: (string | undefined)[] = [undefined, '', 'Host x\n  User y\n', 'no trailing newline', '\n\n# comment\r\nHost *\n'];
  for (const original of originals) {
    const once = installInclude(original, '/s/ssh_config');
    const twice = installInclude(once, '/s/ssh_config');
    assert.equal(twice, once);
    assert.equal(once.split('\n').filter((l) => l === 'Include /s/ssh_config').length, 1);
    assert.ok(once.startsWith('# >>> banger >>>'), 'the Include comes before any Host block');
    assert.equal(uninstallInclude(twice), original, JSON.stringify(original));
  }
});

test('uninstall without a block changes nothing; a file with user additions after install is kept', () => {
  assert.equal(uninstallInclude('Host x\n'), 'Host x\n');
  const installed = installInclude(undefined, '/s') + 'Host mine\n';
  assert.equal(uninstallInclude(installed), 'Host mine\n');
});
