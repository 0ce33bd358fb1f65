import type { SshInfo } from '../api/methods.js';
import { AppError, operationFailed, precondition } from '../errors.js';
import type { CommandRunner } from '../system/runner.js';
import { sshArgv } from './argv.js';

/** What OpenSSH prints when a host's key differs from the one in known_hosts (strings of ssh 9.x). */
const CHANGED = /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed/;

/** The error for a changed host key: the VM's key is not the one banger trusted on first use (SPEC §7.5). */
export function hostKeyChanged(info: SshInfo): AppError {
  return precondition(
    `the ssh host key of VM "${info.name}" (${info.host_key_alias}) is not the one banger recorded on first connect; refusing to connect`,
    `if the VM was rebuilt by hand, forget the old key with \`ssh-keygen -R ${info.host_key_alias} -f ${info.known_hosts}\`; otherwise another program may be answering on ${info.host}:${info.port}`,
  );
}

/**
 * Why an interactive ssh to a VM exited 255 (its stderr went to the terminal):
 * one non-interactive probe tells a changed host key apart from any other
 * connection failure.
 */
export async function sshFailure(runner: CommandRunner, info: SshInfo): Promise<AppError> {
  const probe = await runner
    .run(sshArgv('ssh', info, { batch: true, connectTimeoutS: 5, remoteCommand: 'true' }), { timeoutMs: 15_000 })
    .catch(() => undefined);
  if (probe !== undefined && probe.code === 255 && CHANGED.test(probe.stderr)) return hostKeyChanged(info);
  return operationFailed(`the ssh connection to VM "${info.name}" failed`, {
    hint: `see \`banger vm logs ${info.name}\``,
  });
}
