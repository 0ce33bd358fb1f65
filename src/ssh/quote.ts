/**
 * Quotes one argument for a POSIX shell: OpenSSH sends the remote command as
 * one string that the guest's shell splits again, so every argument is
 * single-quoted and embedded single quotes become '"'"'.
 */
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_\-.,:/@%+=]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'"'"'`)}'`;
}

export function shellJoin(args: readonly string[]): string {
  return args.map(shellQuote).join(' ');
}
