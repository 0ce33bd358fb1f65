import type { CommandRunner } from '../../system/runner.js';
import { withPrivilege } from './hostplan.js';

/*
 * Startup sweep of bridge-mode host state (SPEC §7.3): taps and NAT rules
 * that carry banger's owner tag for a VM that no longer exists are removed,
 * and the bridge too when no bridge-mode VM is left. Anything without the
 * tag is never touched.
 */

/** Most bytes of `ip -j link` / `iptables -S` output read (a host with thousands of links still fits). */
const MAX_LISTING_BYTES = 8 * 1024 * 1024;
const TIMEOUT_MS = 30_000;
const OWNER_ID = /^banger:([0-9a-f]{1,64})$/;

export interface TaggedLink {
  name: string;
  vmId: string;
}

/** Links tagged `banger:<vm id>` in `ip -j link show` output; anything unparsable gives none. */
export function parseTaggedLinks(json: string): TaggedLink[] {
  if (json.length > MAX_LISTING_BYTES) return [];
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(data)) return [];
  const out: TaggedLink[] = [];
  for (const l of data as unknown[]) {
    if (typeof l !== 'object' || l === null) continue;
    const { ifname, ifalias } = l as { ifname?: unknown; ifalias?: unknown };
    if (typeof ifname !== 'string' || typeof ifalias !== 'string') continue;
    const m = OWNER_ID.exec(ifalias);
    if (m) out.push({ name: ifname, vmId: m[1] as string });
  }
  return out;
}

export interface TaggedRule {
  vmId: string;
  /** The rule as `iptables -S` prints it, from `-A` on, split into arguments (quotes removed). */
  args: string[];
}

/** Splits one `iptables -S` line into arguments: whitespace-separated, double quotes grouping (as iptables prints comments). */
function splitRule(line: string): string[] | undefined {
  const args: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) args.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string));
  return args.length > 0 ? args : undefined;
}

/** NAT POSTROUTING rules carrying a `banger:<vm id>` comment in `iptables -t nat -S POSTROUTING` output. */
export function parseTaggedRules(text: string): TaggedRule[] {
  if (text.length > MAX_LISTING_BYTES) return [];
  const out: TaggedRule[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('-A POSTROUTING ')) continue;
    const args = splitRule(line);
    if (!args) continue;
    const c = args.indexOf('--comment');
    const m = c >= 0 ? OWNER_ID.exec(args[c + 1] ?? '') : null;
    if (m) out.push({ vmId: m[1] as string, args });
  }
  return out;
}

export interface SweepInput {
  /** Ids of every VM the store holds (any state): their taps and rules stay. */
  liveVmIds: ReadonlySet<string>;
  bridgeName: string;
  /** True when no VM uses bridge mode any more: the bridge goes too. */
  removeIdleBridge: boolean;
  euid: number;
}

export interface SweepResult {
  taps: string[];
  rules: string[];
  bridge: boolean;
  /** What could not be removed (the command's stderr tail), for the log. */
  errors: string[];
}

/** Removes banger-tagged taps and rules of VMs not in liveVmIds; never throws. */
export async function sweepHostNet(runner: CommandRunner, i: SweepInput): Promise<SweepResult> {
  const result: SweepResult = { taps: [], rules: [], bridge: false, errors: [] };
  const run = async (argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    runner
      .run(withPrivilege(argv, i.euid), { timeoutMs: TIMEOUT_MS })
      .catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e) }));

  const rules = await run(['iptables', '-w', '5', '-t', 'nat', '-S', 'POSTROUTING']);
  if (rules.code !== 0) result.errors.push(`listing NAT rules: ${rules.stderr.trim()}`);
  for (const r of rules.code === 0 ? parseTaggedRules(rules.stdout) : []) {
    if (i.liveVmIds.has(r.vmId)) continue;
    const del = await run(['iptables', '-w', '5', '-t', 'nat', '-D', ...r.args.slice(1)]);
    if (del.code === 0) result.rules.push(r.args.join(' '));
    else result.errors.push(`NAT rule of ${r.vmId}: ${del.stderr.trim()}`);
  }

  const links = await run(['ip', '-j', 'link', 'show']);
  if (links.code !== 0) result.errors.push(`listing links: ${links.stderr.trim()}`);
  for (const l of links.code === 0 ? parseTaggedLinks(links.stdout) : []) {
    if (i.liveVmIds.has(l.vmId)) continue;
    const del = await run(['ip', 'link', 'del', 'dev', l.name]);
    if (del.code === 0) result.taps.push(l.name);
    else result.errors.push(`tap ${l.name}: ${del.stderr.trim()}`);
  }

  if (i.removeIdleBridge) {
    const present = await run(['ip', 'link', 'show', 'dev', i.bridgeName]);
    if (present.code === 0) {
      const del = await run(['ip', 'link', 'del', 'dev', i.bridgeName]);
      if (del.code === 0) result.bridge = true;
      else result.errors.push(`bridge ${i.bridgeName}: ${del.stderr.trim()}`);
    }
  }
  return result;
}
