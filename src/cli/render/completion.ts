/** A command tree reduced to what shell completion needs. */
export interface CompletionNode {
  name: string;
  flags: string[];
  /** What positional arguments complete to. */
  args: 'vms' | 'images' | 'kernels' | 'none';
  children: CompletionNode[];
}

const argKind = (path: string): CompletionNode['args'] => {
  if (/^vm (start|stop|restart|kill|delete|rm|set|show|logs|ssh|stats|cp|health|ports|publish|unpublish)$/.test(path))
    return 'vms';
  if (/^kernel (show|rm|pull)$/.test(path)) return 'kernels';
  if (/^image /.test(path)) return 'images';
  return 'none';
};

/** Builds the tree from commander-like objects (name(), options[].flags, commands[]). */
export function completionTree(
  cmd: { name(): string; options: readonly { long?: string; short?: string }[]; commands: readonly unknown[] },
  path?: string,
): CompletionNode {
  const here = path === undefined ? '' : `${path} ${cmd.name()}`.trim();
  return {
    name: cmd.name(),
    flags: cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => Boolean(f))),
    args: argKind(here),
    children: (cmd.commands as (typeof cmd)[])
      .filter((c) => !c.name().startsWith('__'))
      .map((c) => completionTree(c, here)),
  };
}

function cases(node: CompletionNode, prefix: string[], out: string[]): void {
  const key = prefix.join(' ');
  const words = [...node.children.map((c) => c.name), ...node.flags].join(' ');
  const dyn = node.args === 'none' ? '' : ` $(banger __names ${node.args} 2>/dev/null)`;
  out.push(`    "${key}") words="${words}"${dyn ? `; dyn="${dyn.trim()}"` : ''} ;;`);
  for (const c of node.children) cases(c, [...prefix, c.name], out);
}

/** A bash completion script: the command path so far selects the words offered. */
export function bashCompletion(root: CompletionNode): string {
  const lines: string[] = [];
  cases(root, [], lines);
  return `# bash completion for banger: source <(banger completion bash)
_banger() {
  local cur path w words dyn
  cur="\${COMP_WORDS[COMP_CWORD]}"
  path=""
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$w" in -*) ;; *) path="\${path:+$path }$w" ;; esac
  done
  words=""; dyn=""
  while :; do
    case "$path" in
${lines.join('\n')}
      *) if [ "\${path% *}" = "$path" ]; then path=""; else path="\${path% *}"; fi; continue ;;
    esac
    break
  done
  [ -n "$dyn" ] && words="$words $(eval echo "$dyn")"
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
complete -F _banger banger
`;
}

/** zsh: reuse the bash function through bashcompinit. */
export function zshCompletion(root: CompletionNode): string {
  return `# zsh completion for banger: source <(banger completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(root).split('\n').slice(1).join('\n')}`;
}
