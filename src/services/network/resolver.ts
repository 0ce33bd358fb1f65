import type { NetStep } from './hostplan.js';

/*
 * Routing `*.vm` to banger's name server for every program on the host
 * (SPEC §7.3): with systemd-resolved, the bridge link gets banger's listener
 * as its DNS server and `~vm` as its routing-only domain. Plan steps like the
 * bridge's (shared, run through hostexec.ts); best effort, because a VM runs
 * fine without host-wide names (doctor says when they are missing). The
 * settings live on the link: they go with the bridge, and `resolvectl revert`
 * undoes them.
 */

export function resolverSteps(bridgeName: string, dnsListen: string): NetStep[] {
  return [
    {
      what: `resolver: DNS of ${bridgeName} is ${dnsListen}`,
      argv: ['resolvectl', 'dns', bridgeName, dnsListen],
      undo: ['resolvectl', 'revert', bridgeName],
      shared: true,
      bestEffort: true,
    },
    {
      what: `resolver: ~vm routed to ${bridgeName}`,
      argv: ['resolvectl', 'domain', bridgeName, '~vm'],
      shared: true,
      bestEffort: true,
    },
  ];
}
