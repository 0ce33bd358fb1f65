import { badRequest } from '../errors.js';

/** What one bangerd invocation does. */
export type DaemonMode = 'run' | 'version' | 'help' | 'check-migrations';

export const DAEMON_USAGE = `usage: bangerd [--version | --help | --check-migrations]

bangerd is banger's background daemon. The banger CLI starts it on first use
(detached, logging to the state directory); you rarely run it yourself.

  (no flags)            run the daemon in the foreground
  --check-migrations    exit 0 if the store is compatible, 1 if it needs a
                        migration, 2 if it is incompatible
  -V, --version         print the version and exit
  -h, --help            print this help and exit
`;

const FLAGS: Readonly<Record<string, DaemonMode>> = {
  '--check-migrations': 'check-migrations',
  '--version': 'version',
  '-V': 'version',
  '--help': 'help',
  '-h': 'help',
};

/** bangerd's argv: at most one known flag; anything else is a bad_request naming it. */
export function parseDaemonArgs(argv: readonly string[]): DaemonMode {
  const hint = 'run `bangerd --help` for the flags it takes';
  for (const a of argv) {
    if (!(a in FLAGS))
      throw badRequest(
        a.startsWith('-') ? `unknown option ${JSON.stringify(a)}` : `unexpected argument ${JSON.stringify(a)}`,
        hint,
      );
  }
  if (argv.length > 1)
    throw badRequest(`bangerd takes one flag at most, got ${argv.map((a) => JSON.stringify(a)).join(' ')}`, hint);
  return argv[0] === undefined ? 'run' : (FLAGS[argv[0]] as DaemonMode);
}
