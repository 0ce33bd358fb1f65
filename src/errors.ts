/** The closed set of error codes that cross the CLI↔daemon wire (SPEC §2). */
export const ERROR_CODES = [
  'not_found',
  'already_exists',
  'bad_request',
  'precondition',
  'bad_version',
  'unknown_method',
  'operation_failed',
  'cancelled',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * The one error type banger raises on purpose. `message` says what failed,
 * `hint` says what to do about it. Anything else reaching the top is a bug.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  /** Extra structured detail (e.g. the last console lines of a stuck boot). */
  readonly detail: string | undefined;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; detail?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.hint = opts.hint;
    this.detail = opts.detail;
  }
}

export const badRequest = (message: string, hint?: string): AppError =>
  new AppError('bad_request', message, hint === undefined ? {} : { hint });
export const notFound = (message: string, hint?: string): AppError =>
  new AppError('not_found', message, hint === undefined ? {} : { hint });
export const alreadyExists = (message: string, hint?: string): AppError =>
  new AppError('already_exists', message, hint === undefined ? {} : { hint });
export const precondition = (message: string, hint?: string): AppError =>
  new AppError('precondition', message, hint === undefined ? {} : { hint });
export const operationFailed = (
  message: string,
  opts: { hint?: string; detail?: string; cause?: unknown } = {},
): AppError => new AppError('operation_failed', message, opts);

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}

/** errno codes that mean the disk is full: the user can fix them, so they are never reported as bugs. */
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);

/**
 * A full disk (ENOSPC/EDQUOT from any filesystem call) as an AppError naming
 * the path and the fix; undefined for anything else.
 */
export function noSpaceError(e: unknown): AppError | undefined {
  const err = e as NodeJS.ErrnoException & { dest?: string };
  if (!(e instanceof Error) || typeof err.code !== 'string' || !NO_SPACE.has(err.code)) return undefined;
  const where = err.path === undefined ? '' : ` writing ${err.dest ?? err.path}`;
  const what = err.code === 'EDQUOT' ? 'disk quota exceeded' : 'no space left on device';
  return new AppError('operation_failed', `${what}${where}`, {
    hint: `free space on the filesystem${err.path === undefined ? '' : ` holding ${err.dest ?? err.path}`} (see \`df -h\`) and retry`,
    cause: e,
  });
}

/** The AppError of an operation whose AbortSignal fired (the client went away or the daemon is stopping). */
export const cancelled = (): AppError => new AppError('cancelled', 'operation cancelled');

/** True for the errors an aborted signal or a timeout signal raise (fetch, streams, timers). */
export const isAbortError = (err: unknown): boolean =>
  err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');

/**
 * An error's message for embedding in another message: the message plus its
 * cause's message when that adds something (fetch wraps socket errors as
 * TypeError('fetch failed', { cause })); String() of anything else.
 */
export function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return cause !== undefined && cause !== '' && cause !== err.message ? `${err.message}: ${cause}` : err.message;
}
