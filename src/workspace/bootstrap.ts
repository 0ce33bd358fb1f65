import { badRequest } from '../errors.js';

/*
 * Tooling bootstrap for `vm run PATH`: a repo that pins its tools for mise
 * gets `mise install` in the guest (best effort, logged to a file there). It
 * downloads, so it needs --nat; without it the run refuses before creating
 * anything, unless --no-bootstrap.
 */

/** Files (at the repo's top) that make a run bootstrap. */
export const TOOL_FILES = ['.mise.toml', 'mise.toml', '.tool-versions'] as const;
/** Where the guest logs `mise install`. */
export const BOOTSTRAP_LOG = '/root/.cache/banger/mise-install.log';
/** Exit statuses of the guest script. */
export const BOOTSTRAP_EXIT = { noMise: 97, failed: 98 } as const;

/** The tool files among the shipped ones; empty: no bootstrap. */
export function toolFiles(files: readonly string[]): string[] {
  return TOOL_FILES.filter((f) => files.includes(f));
}

export interface BootstrapFlags {
  nat?: boolean;
  /** false with --no-bootstrap. */
  bootstrap?: boolean;
}

/** Whether to bootstrap; throws (before any VM exists) when it would need network the run does not have. */
export function bootstrapDecision(found: readonly string[], f: BootstrapFlags): boolean {
  if (found.length === 0 || f.bootstrap === false) return false;
  if (!f.nat)
    throw badRequest(
      `the repo pins tools for mise (${found.join(', ')}); installing them in the VM needs network, which this run does not have`,
      'add --nat to let the VM download them, or --no-bootstrap to skip installing them',
    );
  return true;
}

/**
 * argv of the guest side: `mise install` in dir, output to the log; in the
 * background (own session, so the shell or command that follows does not
 * wait or own it) or waited for. Paths are positional parameters.
 */
export function bootstrapArgv(dir: string, background: boolean, log = BOOTSTRAP_LOG): string[] {
  const script = [
    `command -v mise >/dev/null 2>&1 || exit ${BOOTSTRAP_EXIT.noMise}`,
    'mkdir -p -- "$(dirname -- "$3")" || exit 1',
    'inst=\'cd -- "$1" && MISE_YES=1 MISE_TRUSTED_CONFIG_PATHS="$1" mise install\'',
    'if [ "$2" = background ]; then',
    '  if command -v setsid >/dev/null 2>&1; then bg=setsid; else bg=nohup; fi',
    '  $bg sh -c "$inst" sh "$1" </dev/null >"$3" 2>&1 &',
    '  exit 0',
    'fi',
    `sh -c "$inst" sh "$1" </dev/null >"$3" 2>&1 || exit ${BOOTSTRAP_EXIT.failed}`,
  ].join('\n');
  return ['sh', '-c', script, 'sh', dir, background ? 'background' : 'wait', log];
}

/** The line to print for the guest's exit status: a note, or a warning (the run goes on either way). */
export function bootstrapOutcome(vm: string, code: number, background: boolean): { warning: boolean; line: string } {
  if (code === BOOTSTRAP_EXIT.noMise)
    return {
      warning: true,
      line: `warning: the repo pins tools for mise but VM ${vm} has no mise: tools not installed (use an image with mise, or --no-bootstrap)`,
    };
  if (code === 0)
    return {
      warning: false,
      line: background
        ? `bootstrap: mise install runs in the background in ${vm} (log: ${BOOTSTRAP_LOG})`
        : `bootstrap: mise install done in ${vm} (log: ${BOOTSTRAP_LOG})`,
    };
  const why = code === BOOTSTRAP_EXIT.failed ? 'mise install failed' : `the bootstrap failed (exit ${code})`;
  return { warning: true, line: `warning: ${why} in VM ${vm}; see ${vm}:${BOOTSTRAP_LOG}` };
}
