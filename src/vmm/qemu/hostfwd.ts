import { operationFailed } from '../../errors.js';
import type { PortForward } from '../driver.js';

/*
 * qemu user-mode port forwards (issue 14): the `hostfwd=` rules of the
 * netdev at boot, and the HMP commands (through QMP human-monitor-command)
 * that add and remove them on a running VM. Pure builders and the reading of
 * qemu's answer.
 */

/** The user netdev's id in qemuArgv. */
export const USER_NETDEV_ID = 'net0';

/** `tcp:127.0.0.1:18080-:8080`: a hostfwd rule (guest address left to slirp: the guest's DHCP/static one). */
export function hostfwdRule(f: PortForward): string {
  return `${f.protocol}:${f.address}:${f.hostPort}-:${f.guestPort}`;
}

/** The HMP command line that adds or removes one forward on the running user netdev. */
export function hostfwdCommand(op: 'add' | 'remove', f: PortForward): string {
  return op === 'add'
    ? `hostfwd_add ${USER_NETDEV_ID} ${hostfwdRule(f)}`
    : `hostfwd_remove ${USER_NETDEV_ID} ${f.protocol}:${f.address}:${f.hostPort}`;
}

/**
 * qemu's HMP answer to hostfwdCommand: an add prints nothing when it worked;
 * a remove prints "… removed", or "… not found" (already gone: fine). Anything
 * else is an error carrying qemu's words.
 */
export function checkHostfwdReply(op: 'add' | 'remove', f: PortForward, reply: unknown): void {
  const text = typeof reply === 'string' ? reply.trim() : JSON.stringify(reply);
  const rule = `${f.protocol}:${f.address}:${f.hostPort}`;
  if (op === 'add' && text === '') return;
  if (op === 'remove' && /\b(removed|not found)$/.test(text)) return;
  throw operationFailed(
    `qemu could not ${op === 'add' ? 'forward' : 'stop forwarding'} ${rule}: ${text || 'no answer'}`,
    {
      ...(op === 'add' ? { hint: `is ${f.address}:${f.hostPort}/${f.protocol} taken by another process?` } : {}),
    },
  );
}
