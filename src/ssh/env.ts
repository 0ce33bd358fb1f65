import { badRequest } from '../errors.js';
import { shellQuote } from './quote.js';

/** Parses `-e KEY=VAL` flags; KEY must be a shell identifier. */
export function parseEnvFlags(flags: readonly string[]): [string, string][] {
  return flags.map((f) => {
    const i = f.indexOf('=');
    const key = i < 0 ? f : f.slice(0, i);
    if (i < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw badRequest(
        `invalid -e ${JSON.stringify(f)}: expected KEY=VALUE with KEY made of letters, digits and _`,
        'e.g. -e DEBUG=1',
      );
    }
    return [key, f.slice(i + 1)];
  });
}

/** Prefixes a quoted remote command with `env K=V …` so the variables reach it and nothing else. */
export function withEnv(remote: string, env: readonly [string, string][]): string {
  if (env.length === 0) return remote;
  return `env ${env.map(([k, v]) => shellQuote(`${k}=${v}`)).join(' ')} ${remote}`;
}
