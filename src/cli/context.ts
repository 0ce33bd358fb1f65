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
