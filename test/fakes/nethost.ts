import { FakeRunner, type FakeOutcome } from './runner.js';

/**
 * A pretend host for the bridge-mode network steps: links (with master and
 * alias) and NAT POSTROUTING rules, changed by the `ip`, `iptables` and
 * `sysctl` commands the plans run (through `sudo -n` too). `failOn` makes the
 * first command whose joined argv contains it fail.
 */
export class FakeNetHost {
  readonly links = new Map<
    string,
    { kind: 'bridge' | 'tap' | 'other'; master?: string; alias?: string; up: boolean }
  >();
  readonly rules: string[][] = [];
  ipForward = false;
  failOn: string | undefined;
  /** stderr of a failing `sudo -n` (no sudo rule for this user). */
  sudoRefuses = false;
  readonly runner = new FakeRunner();
  /** Whether sudo is installed at all (false: the runner's missing-binary error). */
  sudoInstalled = true;
  /** systemd-resolved's per-link settings (`resolvectl dns|domain|revert`); resolvedDown: it is not running. */
  readonly resolved = new Map<string, { dns?: string; domains?: string[] }>();
  resolvedDown = false;
  /** Runs before each command (sudo stripped): e.g. another process racing us. */
  beforeCommand: ((cmd: string) => void) | undefined;

  constructor() {
    const respond = (argv: readonly string[]): FakeOutcome => this.exec(argv);
    this.runner.on((a) => ['ip', 'iptables', 'sysctl', 'sudo', 'resolvectl'].includes(a[0] ?? ''), respond);
  }

  private exec(argv0: readonly string[]): FakeOutcome {
    let argv = [...argv0];
    if (argv[0] === 'sudo') {
      if (!this.sudoInstalled) return { missing: true };
      if (argv[1] !== '-n') return { code: 1, stderr: 'sudo: expected -n' };
      if (this.sudoRefuses) return { code: 1, stderr: 'sudo: a password is required\n' };
      argv = argv.slice(2);
    }
    this.beforeCommand?.(argv.join(' '));
    if (this.failOn !== undefined && argv.join(' ').includes(this.failOn)) {
      this.failOn = undefined;
      return { code: 2, stderr: 'RTNETLINK answers: Operation not permitted\n' };
    }
    if (argv[0] === 'resolvectl') return this.resolvectl(argv);
    const a = argv[0] === 'iptables' ? argv.filter((x, i) => !(x === '-w' || argv[i - 1] === '-w')) : argv;
    const s = a.join(' ');
    let m: RegExpExecArray | null;
    if ((m = /^ip link show dev (\S+)$/.exec(s)))
      return this.links.has(m[1] as string) ? {} : { code: 1, stderr: 'does not exist' };
    if (s === 'ip -j link show') {
      const list = [...this.links].map(([ifname, l]) => ({
        ifname,
        ...(l.master ? { master: l.master } : {}),
        ...(l.alias ? { ifalias: l.alias } : {}),
      }));
      return { stdout: JSON.stringify(list) };
    }
    if ((m = /^ip link add name (\S+) type bridge$/.exec(s))) return this.add(m[1] as string, 'bridge');
    if ((m = /^ip tuntap add dev (\S+) mode tap/.exec(s))) return this.add(m[1] as string, 'tap');
    if ((m = /^ip link del dev (\S+)$/.exec(s))) {
      const name = m[1] as string;
      if (!this.links.delete(name)) return { code: 1, stderr: `Cannot find device "${name}"` };
      for (const l of this.links.values()) if (l.master === name) delete l.master;
      return {};
    }
    if ((m = /^ip link set dev (\S+) (up|alias (\S+)|master (\S+))$/.exec(s))) {
      const l = this.links.get(m[1] as string);
      if (!l) return { code: 1, stderr: 'Cannot find device' };
      if (m[2] === 'up') l.up = true;
      if (m[3] !== undefined) l.alias = m[3];
      if (m[4] !== undefined) {
        if (!this.links.has(m[4])) return { code: 1, stderr: 'Cannot find device' };
        l.master = m[4];
      }
      return {};
    }
    if ((m = /^ip addr replace \S+ dev (\S+)$/.exec(s))) return this.links.has(m[1] as string) ? {} : { code: 1 };
    if (s === 'sysctl -q -w net.ipv4.ip_forward=1') {
      this.ipForward = true;
      return {};
    }
    if (a[0] === 'iptables' && a[1] === '-t' && a[2] === 'nat') {
      const op = a[3];
      const rule = a.slice(4);
      const idx = this.rules.findIndex((r) => r.join(' ') === rule.join(' '));
      if (op === '-S')
        return {
          stdout:
            [
              '-P POSTROUTING ACCEPT',
              ...this.rules.map(
                (r) => `-A ${r.map((x) => (x.includes(':') && !x.includes('/') ? `"${x}"` : x)).join(' ')}`,
              ),
            ].join('\n') + '\n',
        };
      if (op === '-C')
        return idx >= 0 ? {} : { code: 1, stderr: 'Bad rule (does a matching rule exist in that chain?).' };
      if (op === '-A') {
        this.rules.push(rule);
        return {};
      }
      if (op === '-D') {
        if (idx < 0) return { code: 1, stderr: 'Bad rule' };
        this.rules.splice(idx, 1);
        return {};
      }
    }
    return { code: 99, stderr: `FakeNetHost: no model for ${s}` };
  }

  private resolvectl(argv: readonly string[]): FakeOutcome {
    if (this.resolvedDown) return { code: 1, stderr: 'Failed to connect to bus: resolved is not running\n' };
    const [, verb, link, ...args] = argv;
    if (link === undefined || !this.links.has(link))
      return { code: 1, stderr: `Failed to resolve interface "${link ?? ''}": No such device\n` };
    const cur = this.resolved.get(link) ?? {};
    if (verb === 'dns' && args.length === 1) this.resolved.set(link, { ...cur, dns: args[0] as string });
    else if (verb === 'domain') this.resolved.set(link, { ...cur, domains: [...args] });
    else if (verb === 'revert' && args.length === 0) this.resolved.delete(link);
    else return { code: 99, stderr: `FakeNetHost: no model for ${argv.join(' ')}` };
    return {};
  }

  private add(name: string, kind: 'bridge' | 'tap'): FakeOutcome {
    if (this.links.has(name)) return { code: 2, stderr: 'RTNETLINK answers: File exists' };
    this.links.set(name, { kind, up: false });
    return {};
  }

  /** Every command run, as one string each, sudo included. */
  commands(): string[] {
    return this.runner.calls.map((c) => c.argv.join(' '));
  }
}
