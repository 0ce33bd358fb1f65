import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../errors.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import type { PortForward, VmmSpec } from '../driver.js';
import { qemuArgv } from './argv.js';
import { QemuDriver } from './driver.js';
import { checkHostfwdReply, hostfwdCommand, hostfwdRule } from './hostfwd.js';

const web: PortForward = { protocol: 'tcp', address: '127.0.0.1', hostPort: 18080, guestPort: 8080 };
const dns: PortForward = { protocol: 'udp', address: '0.0.0.0', hostPort: 5353, guestPort: 53 };

test('hostfwd rules and HMP commands', () => {
  assert.equal(hostfwdRule(web), 'tcp:127.0.0.1:18080-:8080');
  assert.equal(hostfwdRule(dns), 'udp:0.0.0.0:5353-:53');
  assert.equal(hostfwdCommand('add', web), 'hostfwd_add net0 tcp:127.0.0.1:18080-:8080');
  assert.equal(hostfwdCommand('remove', dns), 'hostfwd_remove net0 udp:0.0.0.0:5353');
});

test("hostfwd replies: qemu 7.2's words for success, gone and failure", () => {
  checkHostfwdReply('add', web, '');
  checkHostfwdReply('remove', web, 'host forwarding rule for tcp:127.0.0.1:18080 removed\r\n');
  checkHostfwdReply('remove', web, 'host forwarding rule for tcp:127.0.0.1:18080 not found\r\n');
  const fails: [op: 'add' | 'remove', reply: unknown][] = [
    ['add', "Could not set up host forwarding rule 'tcp:127.0.0.1:18080-:8080'\r\n"],
    ['add', "unrecognized netdev id 'net0'\r\n"],
    ['remove', 'invalid format\r\n'],
    ['add', undefined],
  ];
  for (const [op, reply] of fails)
    assert.throws(
      () => checkHostfwdReply(op, web, reply),
      (e: unknown) => e instanceof AppError && e.message.includes('tcp:127.0.0.1:18080'),
      String(reply),
    );
});

test('qemu argv: published ports are hostfwd rules of the user netdev, after ssh', () => {
  const spec: VmmSpec = {
    id: 'abc',
    name: 'dev',
    vcpu: 1,
    memoryMib: 512,
    accel: 'tcg',
    kernelPath: '/k',
    initrdPath: undefined,
    cmdline: '',
    disks: [],
    net: { mode: 'user', sshPort: 40022, allowOutbound: false, mac: '52:54:00:00:00:01', forwards: [web, dns] },
    consoleLog: '/c',
    controlSocket: '/q',
    vmmLog: '/l',
  };
  const argv = qemuArgv('q', spec);
  assert.equal(
    argv[argv.indexOf('-netdev') + 1],
    'user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22,hostfwd=tcp:127.0.0.1:18080-:8080,hostfwd=udp:0.0.0.0:5353-:53',
  );
});

test('qemu driver: forward() sends hostfwd_add/remove through QMP human-monitor-command and reads the reply', async () => {
  const calls: unknown[] = [];
  let reply = '';
  const qmp = (socket: string, execute: string, args?: Record<string, unknown>): Promise<unknown> => {
    calls.push([socket, execute, args]);
    return Promise.resolve(reply);
  };
  const d = new QemuDriver(new FakeRunner(), 'q', undefined, qmp);
  const h = { pid: 1, startTime: 1, controlSocket: '/r/x.qmp' };
  await d.forward(h, 'add', web);
  reply = 'host forwarding rule for tcp:127.0.0.1:18080 removed';
  await d.forward(h, 'remove', web);
  assert.deepEqual(calls, [
    ['/r/x.qmp', 'human-monitor-command', { 'command-line': 'hostfwd_add net0 tcp:127.0.0.1:18080-:8080' }],
    ['/r/x.qmp', 'human-monitor-command', { 'command-line': 'hostfwd_remove net0 tcp:127.0.0.1:18080' }],
  ]);
  reply = "Could not set up host forwarding rule 'tcp:127.0.0.1:18080-:8080'";
  await assert.rejects(d.forward(h, 'add', web), /qemu could not forward tcp:127\.0\.0\.1:18080/);
});
