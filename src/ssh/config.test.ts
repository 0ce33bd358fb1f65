import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NodeRunner } from '../system/node-runner.js';
import { scpArgv, sshArgv } from './argv.js';
import { installInclude, renderSshConfig, sshOptionValue, uninstallInclude } from './config.js';

test('ssh_config has one block per VM keyed by <name>.vm', () => {
  const text = renderSshConfig([
    { name: 'b', host: '127.0.0.1', port: 2, key: '/k', knownHosts: '/kh' },
    { name: 'a', host: '127.0.0.1', port: 1, key: '/k', knownHosts: '/kh' },
  ]);
  assert.ok(text.indexOf('Host a.vm') < text.indexOf('Host b.vm'));
  assert.match(text, /Host a\.vm\n {2}HostName 127\.0\.0\.1\n {2}Port 1\n/);
  assert.match(text, /HostKeyAlias b\.vm/);
  assert.equal(
    renderSshConfig([])
      .split('\n')
      .filter((l) => l.startsWith('Host ')).length,
    0,
  );
});

test('install is idempotent and uninstall restores the file byte for byte', () => {
  const originals: (string | undefined)[] = [
    undefined,
    '',
    'Host x\n  User y\n',
    'no trailing newline',
    '\n\n# comment\r\nHost *\n',
  ];
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

/** `ssh -G` prints the configuration ssh would use, without connecting. */
async function sshG(argv: string[]): Promise<Map<string, string[]>> {
  const res = await new NodeRunner().run(argv);
  assert.equal(res.code, 0, res.stderr);
  const out = new Map<string, string[]>();
  for (const line of res.stdout.split('\n')) {
    const i = line.indexOf(' ');
    if (i > 0) out.set(line.slice(0, i), [...(out.get(line.slice(0, i)) ?? []), line.slice(i + 1)]);
  }
  return out;
}

const haveSsh = async (): Promise<boolean> =>
  (await new NodeRunner().run(['ssh', '-V']).catch(() => ({ code: 1 }))).code === 0;

// Two spaces: a path split on whitespace would come back with one.
const ODD_DIR = '/state/a  b,"c"%d';

test('ssh_config values with spaces, quotes and % are quoted as ssh reads them (real ssh -G)', async (t) => {
  if (!(await haveSsh())) return t.skip('ssh not installed');
  const dir = mkdtempSync(join(tmpdir(), 'banger-sshcfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'ssh_config');
  writeFileSync(
    file,
    renderSshConfig([
      {
        name: 'dev',
        host: '127.0.0.1',
        port: 40022,
        key: `${ODD_DIR}/id_ed25519`,
        knownHosts: `${ODD_DIR}/known_hosts`,
      },
    ]),
  );
  const cfg = await sshG(['ssh', '-G', '-F', file, 'dev.vm']);
  // ssh -G shows IdentityFile before its %-expansion, which turns '%%' into '%' when the key is loaded (ssh -v: "identity file /state/a  b,"c"%d/id_ed25519").
  assert.deepEqual(cfg.get('identityfile'), [`${ODD_DIR.replaceAll('%', '%%')}/id_ed25519`]);
  assert.deepEqual(cfg.get('userknownhostsfile'), [`${ODD_DIR}/known_hosts`]);
  assert.deepEqual(cfg.get('port'), ['40022']);

  // The Include line in ~/.ssh/config, pointing at a file in such a directory.
  const odd = join(dir, 'a  b,"c"');
  mkdirSync(odd);
  writeFileSync(join(odd, 'ssh_config'), 'Host inc.vm\n  Port 4242\n');
  const userConfig = join(dir, 'config');
  writeFileSync(userConfig, installInclude(undefined, join(odd, 'ssh_config')));
  assert.deepEqual((await sshG(['ssh', '-G', '-F', userConfig, 'inc.vm'])).get('port'), ['4242']);
});

test('ssh argv: -o values with spaces, quotes and % reach ssh whole (real ssh -G)', async (t) => {
  if (!(await haveSsh())) return t.skip('ssh not installed');
  const info = {
    name: 'dev',
    host: '127.0.0.1',
    port: 40022,
    user: 'root',
    key: `${ODD_DIR}/id`,
    known_hosts: `${ODD_DIR}/known_hosts`,
    host_key_alias: 'dev.vm',
  };
  const argv = sshArgv('ssh', info, { batch: true });
  const cfg = await sshG([argv[0] as string, '-G', ...argv.slice(1)]);
  assert.deepEqual(cfg.get('userknownhostsfile'), [`${ODD_DIR}/known_hosts`]);
  assert.deepEqual(cfg.get('identityfile'), [`${ODD_DIR.replaceAll('%', '%%')}/id`]);
  assert.deepEqual(cfg.get('hostkeyalias'), ['dev.vm']);
  const scp = scpArgv('scp', info, '/a', 'root@127.0.0.1:/b');
  assert.ok(scp.includes(`UserKnownHostsFile=${sshOptionValue(`${ODD_DIR}/known_hosts`, { percent: true })}`));
});

test('sshOptionValue', () => {
  const cases: [string, boolean, string][] = [
    ['/s/known_hosts', false, '/s/known_hosts'],
    ['/s/a b', false, '"/s/a b"'],
    ['/s/a,b', false, '/s/a,b'],
    ['/s/"q"', false, '"/s/\\"q\\""'],
    ['/s/back\\slash', false, '"/s/back\\\\slash"'],
    ['/s/100%', true, '/s/100%%'],
    ['/s/100%', false, '/s/100%'],
    ['/s/#x', false, '"/s/#x"'],
    ["/s/it's", false, `"/s/it's"`],
  ];
  for (const [value, percent, want] of cases) assert.equal(sshOptionValue(value, { percent }), want, value);
});
