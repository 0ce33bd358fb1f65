/**
 * One value in ssh_config syntax, which is also how ssh parses `-o Key=value`:
 * ssh splits a line on whitespace, honours "…" with \" and \\ escapes, and a
 * '#' starts a comment. Plain values stay as they are. With `percent`, for
 * the keywords ssh %-expands (IdentityFile, UserKnownHostsFile), '%' is doubled.
 */
export function sshOptionValue(value: string, o: { percent?: boolean } = {}): string {
  const v = o.percent ? value.replaceAll('%', '%%') : value;
  if (/^[A-Za-z0-9_\-.,:/@%+=]+$/.test(v)) return v;
  return `"${v.replace(/["\\]/g, '\\$&')}"`;
}

/** banger's own ssh_config: one block per running VM, so `ssh <name>.vm` works once included (SPEC §7.5). */
export interface SshConfigHost {
  name: string;
  host: string;
  port: number;
  key: string;
  knownHosts: string;
}

export function renderSshConfig(hosts: readonly SshConfigHost[]): string {
  const head = '# Managed by banger: rewritten as VMs start and stop. Do not edit.\n';
  const blocks = [...hosts]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((h) =>
      [
        `Host ${h.name}.vm`,
        `  HostName ${h.host}`,
        `  Port ${h.port}`,
        '  User root',
        `  IdentityFile ${sshOptionValue(h.key, { percent: true })}`,
        '  IdentitiesOnly yes',
        `  UserKnownHostsFile ${sshOptionValue(h.knownHosts, { percent: true })}`,
        `  HostKeyAlias ${h.name}.vm`,
        '  StrictHostKeyChecking accept-new',
        '',
      ].join('\n'),
    );
  return head + blocks.join('\n');
}

const BEGIN = '# >>> banger >>>';
const END = '# <<< banger <<<';
const CREATED = '# (file created by banger: removed again by `banger ssh-config --uninstall`)';

/**
 * Adds the marked Include block at the top of ~/.ssh/config (an Include after
 * a Host line would only apply inside that Host). Idempotent: an existing
 * block is left as it is. `existed` = whether the file existed before.
 */
export function installInclude(text: string | undefined, includePath: string): string {
  if (text !== undefined && text.includes(BEGIN)) return text;
  const lines = [BEGIN, ...(text === undefined ? [CREATED] : []), `Include ${sshOptionValue(includePath)}`, END, ''];
  return lines.join('\n') + (text ?? '');
}

/**
 * Removes exactly the marked block; returns undefined when the file should be
 * deleted (banger created it and nothing else was added).
 */
export function uninstallInclude(text: string): string | undefined {
  const start = text.indexOf(BEGIN);
  if (start < 0) return text;
  const endMarker = text.indexOf(END, start);
  if (endMarker < 0) return text;
  let end = endMarker + END.length;
  if (text[end] === '\n') end++;
  const block = text.slice(start, end);
  const rest = text.slice(0, start) + text.slice(end);
  if (block.includes(CREATED) && rest === '') return undefined;
  return rest;
}
