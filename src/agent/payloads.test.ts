import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as P from './payloads.js';
import { MAX_PAYLOAD, NONE } from './protocol.js';

test('payloads round-trip through their encoder and decoder', () => {
  const cases: [string, unknown, (v: never) => Buffer, (b: Buffer) => unknown][] = [
    ['host hello', { minVersion: 1, maxVersion: 3 }, P.encodeHostHello, P.decodeHostHello],
    [
      'agent hello',
      { version: 1, maxPayload: MAX_PAYLOAD, name: 'banger-agent 1' },
      P.encodeAgentHello,
      P.decodeAgentHello,
    ],
    ['error', { code: 6, errno: 2, message: 'open /x: No such file or directory' }, P.encodeError, P.decodeError],
    ['health', { uptimeMs: 2 ** 40, sessions: 3, name: 'a' }, P.encodeHealthReply, P.decodeHealthReply],
    ['exit', { kind: 'exited', code: 7 }, P.encodeExit, P.decodeExit],
    ['killed', { kind: 'signaled', signal: 9 }, P.encodeExit, P.decodeExit],
    ['shutdown', 'reboot', P.encodeShutdown, P.decodeShutdown],
    [
      'file list reply',
      {
        truncated: true,
        entries: [
          { name: 'a', kind: 'file', mode: 0o644, size: 2 ** 40, mtimeS: -5 },
          { name: 'ünï', kind: 'symlink', mode: 0o777, size: 4, mtimeS: 1 },
          { name: 'd', kind: 'directory', mode: 0o755, size: 0, mtimeS: 0 },
          { name: 'p', kind: 'other', mode: 0, size: 0, mtimeS: 0 },
        ],
      },
      P.encodeFileListReply,
      (b: Buffer) => P.decodeFileListReply(b),
    ],
    ['identity', { hostname: 'dev-1.vm', entropy: Buffer.alloc(512, 1) }, P.encodeIdentity, P.decodeIdentity],
    ['empty identity', {}, P.encodeIdentity, P.decodeIdentity],
    ['file info', { mode: 0o4755, uid: 1000, gid: 100, size: 2 ** 33, mtimeS: -5 }, P.encodeFileInfo, P.decodeFileInfo],
    ['file get', '/etc/hostname', P.encodeFileGet, P.decodeFileGet],
    [
      'ports',
      {
        truncated: true,
        ports: [
          { protocol: 'tcp', family: 4, address: '127.0.0.1', port: 8080, uid: 0 },
          { protocol: 'udp', family: 6, address: '::', port: 53, uid: 101 },
          { protocol: 'tcp', family: 6, address: 'fe80::1:0:0:2', port: 22, uid: 0 },
          { protocol: 'tcp', family: 6, address: '2001:db8:0:1:2:3:4:5', port: 443, uid: 0 },
        ],
      },
      P.encodePortsReply,
      P.decodePortsReply,
    ],
  ];
  for (const [name, value, enc, dec] of cases) assert.deepEqual(dec(enc(value as never)), value, name);
});

test('EXEC carries argv, env, cwd, ids and the terminal exactly', () => {
  const buf = P.encodeExec({
    argv: ['sh', '-c', 'echo "$X"; exit 7', ''],
    env: { PATH: '/bin', X: 'a=b c\n' },
    cwd: '/root/repo',
    uid: 1000,
    pty: { rows: 40, cols: 120 },
  });
  assert.deepEqual(P.decodeExec(buf), {
    pty: true,
    uid: 1000,
    gid: NONE,
    rows: 40,
    cols: 120,
    cwd: '/root/repo',
    argv: ['sh', '-c', 'echo "$X"; exit 7', ''],
    env: ['PATH=/bin', 'X=a=b c\n'],
  });
  assert.deepEqual(P.decodeExec(P.encodeExec({ argv: ['true'] })), {
    pty: false,
    uid: NONE,
    gid: NONE,
    rows: 0,
    cols: 0,
    cwd: '',
    argv: ['true'],
    env: [],
  });
});

test('encoders refuse bad values and name them', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['no argv', () => P.encodeExec({ argv: [] }), /argv must have 1\.\.4096 entries, got 0/],
    ['empty program', () => P.encodeExec({ argv: [''] }), /argv\[0\] is empty/],
    ['NUL in argv', () => P.encodeExec({ argv: ['echo', 'a\0b'] }), /argv\[1\] "a\\u0000b" contains a NUL byte/],
    ['NUL in cwd', () => P.encodeExec({ argv: ['x'], cwd: '/a\0' }), /cwd .* contains a NUL byte/],
    ['= in env name', () => P.encodeExec({ argv: ['x'], env: { 'A=B': '1' } }), /environment variable name "A=B"/],
    ['empty env name', () => P.encodeExec({ argv: ['x'], env: { '': '1' } }), /environment variable name ""/],
    [
      'huge argv',
      () => P.encodeExec({ argv: ['x', 'y'.repeat(MAX_PAYLOAD)] }),
      /take \d+ bytes, more than the agent's 131072/,
    ],
    ['uid', () => P.encodeExec({ argv: ['x'], uid: -1 }), /uid -1 is not a valid id/],
    ['uid none', () => P.encodeExec({ argv: ['x'], uid: NONE }), /uid 4294967295 is not a valid id/],
    [
      'rows',
      () => P.encodeExec({ argv: ['x'], pty: { rows: 70000, cols: 80 } }),
      /rows 70000 is not within 0\.\.65535/,
    ],
    ['relative path', () => P.encodeFileGet('etc/x'), /guest path "etc\/x" is not absolute/],
    ['long path', () => P.encodeFileGet(`/${'a'.repeat(5000)}`), /longer than 4095/],
    ['mode', () => P.encodeFilePut({ mode: 0o10000, size: 1, path: '/x' }), /file mode 4096 is not within 0\.\.07777/],
    ['size', () => P.encodeFilePut({ mode: 0o644, size: -1, path: '/x' }), /file size -1/],
    ['hostname', () => P.encodeIdentity({ hostname: 'a b' }), /hostname "a b" must be 1\.\.64 characters/],
    ['entropy', () => P.encodeIdentity({ entropy: Buffer.alloc(513) }), /entropy of 513 bytes/],
    [
      'address',
      () =>
        P.encodePortsReply({
          truncated: false,
          ports: [{ protocol: 'tcp', family: 4, address: '::1', port: 1, uid: 0 }],
        }),
      /address ::1 is not IPv4/,
    ],
  ];
  for (const [name, fn, re] of cases) {
    assert.throws(fn, (e: Error & { code?: string }) => e.code === 'bad_request' && re.test(e.message), name);
  }
});

const exec = P.encodeExec({ argv: ['a', 'b'], env: { K: 'v' } });
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

test('decoders refuse malformed payloads and say what is wrong', () => {
  const cases: [string, () => unknown, RegExp][] = [
    [
      'hello magic',
      () => P.decodeHostHello(Buffer.from('BANGERAX\0\x01\0\x01', 'latin1')),
      /does not start with "BANGERAG"/,
    ],
    [
      'hello short',
      () => P.decodeHostHello(Buffer.from('BANGERAG\0', 'latin1')),
      /HELLO payload: truncated in min_version/,
    ],
    ['hello long', () => P.decodeHostHello(Buffer.from('BANGERAG\0\x01\0\x01\0', 'latin1')), /1 trailing bytes/],
    [
      'exec truncated at every byte',
      () => {
        for (let n = 0; n < exec.length; n++)
          assert.throws(() => P.decodeExec(exec.subarray(0, n)), /malformed EXEC payload/, `${n} bytes`);
        throw new Error('all truncations refused');
      },
      /all truncations refused/,
    ],
    ['exec flags', () => P.decodeExec(Buffer.concat([u32(2), exec.subarray(4)])), /flags 0x2 has unknown bits/],
    ['exec argc huge', () => P.decodeExec(Buffer.concat([exec.subarray(0, 20), u32(0xffffffff)])), /argc 4294967295/],
    ['exec argc 0', () => P.decodeExec(Buffer.concat([exec.subarray(0, 20), u32(0), u32(0)])), /argc 0/],
    [
      'exec string past the end',
      () => P.decodeExec(Buffer.concat([exec.subarray(0, 20), u32(1), u32(1000), Buffer.from('a')])),
      /truncated in argv\[0\]/,
    ],
    ['exec trailing', () => P.decodeExec(Buffer.concat([exec, Buffer.from([0])])), /1 trailing bytes/],
    ['exit kind', () => P.decodeExit(Buffer.from([2, 0, 0, 0, 1])), /exit kind 2/],
    ['exit status', () => P.decodeExit(Buffer.from([0, 0, 0, 1, 0])), /exit status 256/],
    ['exit signal', () => P.decodeExit(Buffer.from([1, 0, 0, 0, 65])), /signal 65/],
    [
      'ports count',
      () => P.decodePortsReply(Buffer.from([0, 0, 0, 0, 2, ...Buffer.alloc(24)])),
      /2 entries do not fill 24 bytes/,
    ],
    [
      'ports family',
      () => P.decodePortsReply(Buffer.from([0, 0, 0, 0, 1, 6, 5, ...Buffer.alloc(22)])),
      /family 5 of entry 0/,
    ],
    [
      'ports protocol',
      () => P.decodePortsReply(Buffer.from([0, 0, 0, 0, 1, 1, 4, ...Buffer.alloc(22)])),
      /protocol 1 of entry 0/,
    ],
    [
      'file info mode',
      () => P.decodeFileInfo(P.encodeFileInfo({ mode: 0o7777, uid: 0, gid: 0, size: 0, mtimeS: 0 }).fill(0xff, 0, 4)),
      /mode 037777777777/,
    ],
    [
      'file size beyond 2^53',
      () => P.decodeFileInfo(Buffer.concat([Buffer.alloc(12), Buffer.alloc(8, 0xff), Buffer.alloc(8)])),
      /size 18446744073709551615 is too large/,
    ],
    [
      'put relative',
      () => P.decodeFilePut(Buffer.concat([Buffer.alloc(20), u32(1), Buffer.from('x')])),
      /path is not an absolute path/,
    ],
    ['identity tag', () => P.decodeIdentity(Buffer.from([9, 0, 1, 0])), /record tag 9 is unknown/],
    ['identity truncated', () => P.decodeIdentity(Buffer.from([1, 0, 5, 0x61])), /truncated in value/],
    [
      'agent name too long',
      () => P.decodeHealthReply(Buffer.concat([Buffer.alloc(12), Buffer.alloc(65, 0x61)])),
      /agent name of 65 bytes/,
    ],
  ];
  for (const [name, fn, re] of cases) {
    assert.throws(
      fn,
      (e: Error & { code?: string }) => re.test(e.message) || assert.fail(`${name}: ${e.message}`),
      name,
    );
  }
});

test('ERROR messages from the guest are kept on one printable line', () => {
  const e = P.decodeError(P.encodeError({ code: 6, errno: 0, message: 'bad\n\x1b[31mred' }));
  assert.equal(e.message, 'bad  [31mred');
  assert.equal(P.decodeError(P.encodeError({ code: 7, errno: 0, message: '' })).message, 'aborted');
});

test('FILE_LIST: the request round-trips; replies with bad entries or more than asked are refused', () => {
  assert.deepEqual(P.decodeFileList(P.encodeFileList('/root', 7)), { path: '/root', maxEntries: 7 });
  assert.throws(() => P.encodeFileList('/root', 65537), /max entries 65537/);
  assert.throws(() => P.encodeFileList('root', 1), /not absolute/);
  const entry = (name: string, kind = 'file') => ({ name, kind, mode: 0o644, size: 1, mtimeS: 1 }) as P.DirEntry;
  const bad: [string, Buffer, RegExp, number?][] = [
    ['a name with a slash', P.encodeFileListReply({ truncated: false, entries: [entry('a/b')] }), /not a file name/],
    ['an empty name', P.encodeFileListReply({ truncated: false, entries: [entry('')] }), /not a file name/],
    ['dot-dot', P.encodeFileListReply({ truncated: false, entries: [entry('..')] }), /is \.\./],
    ['more than asked', P.encodeFileListReply({ truncated: false, entries: [entry('a'), entry('b')] }), /count 2/, 1],
    ['a bad kind', Buffer.from([0, 0, 0, 0, 1, 9, ...Buffer.alloc(20), 0, 0, 0, 1, 0x61]), /kind 9/],
    ['a short payload', Buffer.from([0, 0, 0, 0, 1]), /count 1|truncated|short/],
  ];
  for (const [what, payload, re, max] of bad) assert.throws(() => P.decodeFileListReply(payload, max), re, what);
});
