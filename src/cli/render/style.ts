/** Colour only on a TTY and never with NO_COLOR (SPEC §4). */
export interface Style {
  dim(s: string): string;
  bold(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  green(s: string): string;
}

export function makeStyle(isTty: boolean, env: Record<string, string | undefined>): Style {
  const on = isTty && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  const wrap = (code: string) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { dim: wrap('2'), bold: wrap('1'), red: wrap('31'), yellow: wrap('33'), green: wrap('32') };
}
