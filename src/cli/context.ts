import type { CommandRunner } from '../system/runner.js';
import type { Paths } from '../system/paths.js';
import type { DaemonClient } from './client.js';
import type { Style } from './render/style.js';

/** What every command handler gets; built once in cli/main.ts. */
export interface CliContext {
  paths: Paths;
  client: DaemonClient;
  runner: CommandRunner;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  style: Style;
  stdinIsTty: boolean;
  version: string;
  env: Record<string, string | undefined>;
}

/** A command's outcome: its exit code. */
export type ExitCode = number;

/**
 * What a command returns; cli/main.ts prints it, once: `json` with --json (for
 * the commands that have it), else `text`, to stdout; `err` to stderr. Commands
 * that stream or hand the terminal over (vm run, vm ssh, vm cp, vm logs -f,
 * progress lines) write those parts as they happen and return the rest.
 */
export interface CommandResult {
  /** The exit code; 0 when left out. */
  code?: ExitCode;
  /** What --json prints, as indented JSON. */
  json?: unknown;
  /** Human output for stdout. */
  text?: string;
  /** For stderr: notes, the failures of some targets of a multi-target verb. */
  err?: string;
}

/** Turns a command's function into its commander action: runs it, then prints its result and sets the exit code. */
export type Act = <A extends unknown[]>(
  fn: (...args: A) => Promise<CommandResult> | CommandResult,
) => (...args: A) => Promise<void>;
