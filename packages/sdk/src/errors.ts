/* The SDK's errors: every one carries the daemon's `code` (and `hint` when it gave one). */

export class BangerError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'BangerError';
  }
}

/** Which of the named timeouts fired. */
export type TimeoutKind = 'ttl' | 'idleTtl' | 'timeout' | 'requestTimeout';

/** A named timeout fired: `kind` says which (the VM's ttl or idleTtl, an exec's timeout, a request's requestTimeout). */
export class BangerTimeoutError extends BangerError {
  constructor(
    readonly kind: TimeoutKind,
    message: string,
    /** Output up to then, for an exec's timeout. */
    readonly stdout = '',
    readonly stderr = '',
  ) {
    super('timeout', `${kind} fired: ${message}`);
    this.name = 'BangerTimeoutError';
  }
}

/** `exec(..., {check: true})` of a command that did not exit 0. */
export class ExecError extends BangerError {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly signal: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(
      'exec_failed',
      `${argv.join(' ')} ${exitCode !== null ? `exited with ${exitCode}` : `was killed by signal ${signal}`}`,
    );
    this.name = 'ExecError';
  }
}
