import type { SshInfo } from '../api/methods.js';
import { sshOptionValue } from './config.js';

/** The key and known_hosts options: ssh parses -o values like ssh_config lines and %-expands both paths. */
function pathOptions(info: SshInfo): string[] {
  return [
    '-o',
    `IdentityFile=${sshOptionValue(info.key, { percent: true })}`,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${sshOptionValue(info.known_hosts, { percent: true })}`,
  ];
}

export interface SshArgvOptions {
  /** Force a TTY (-tt) or none (-T); undefined lets ssh decide. */
  tty?: boolean;
  /** No prompts, fail instead (readiness probes). */
  batch?: boolean;
  connectTimeoutS?: number;
  /** Already shell-quoted remote command; absent → login shell. */
  remoteCommand?: string;
}

/**
 * argv for the system OpenSSH client against a VM. `-F none` keeps the user's
 * ssh_config out of it; host keys are trusted on first use and stored under
 * HostKeyAlias=<name>.vm, never under the address or the forwarded port.
 */
export function sshArgv(ssh: string, info: SshInfo, opts: SshArgvOptions = {}): string[] {
  const argv = [
    ssh,
    '-F',
    'none',
    '-p',
    String(info.port),
    ...pathOptions(info),
    '-o',
    'StrictHostKeyChecking=accept-new',
    '-o',
    `HostKeyAlias=${info.host_key_alias}`,
    '-o',
    'LogLevel=ERROR',
    '-o',
    `ConnectTimeout=${opts.connectTimeoutS ?? 10}`,
    '-o',
    'ServerAliveInterval=15',
  ];
  if (opts.batch) argv.push('-o', 'BatchMode=yes');
  if (opts.tty === true) argv.push('-tt');
  if (opts.tty === false) argv.push('-T');
  argv.push(`${info.user}@${info.host}`);
  if (opts.remoteCommand !== undefined) argv.push('--', opts.remoteCommand);
  return argv;
}

/** scp argv with the same trust settings as sshArgv; -r for directories, -p to keep modes and times. */
export function scpArgv(scp: string, info: SshInfo, from: string, to: string): string[] {
  return [
    scp,
    '-F',
    'none',
    '-r',
    '-p',
    '-q',
    '-P',
    String(info.port),
    ...pathOptions(info),
    '-o',
    'StrictHostKeyChecking=accept-new',
    '-o',
    `HostKeyAlias=${info.host_key_alias}`,
    '-o',
    'BatchMode=yes',
    '--',
    from,
    to,
  ];
}
