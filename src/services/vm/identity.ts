import { randomBytes } from 'node:crypto';
import type { AgentClient } from '../../agent/client.js';
import type { IdentityNetwork } from '../../agent/payloads.js';
import { badRequest, errorMessage } from '../../errors.js';
import type { Logger } from '../context.js';

/**
 * The per-VM identity a guest takes after a restore from a template (issue 17,
 * docs/warm-start.md): the template's hostname, MAC/IP, machine-id, clock and
 * RNG state were cloned into every VM restored from it, so the host sends fresh
 * ones over the agent and then opens the gate (host keys, sshd).
 */
export interface RefreshIdentityInput {
  hostname: string;
  /** Omitted: the guest's network stays as it is (cold boots got theirs from the kernel command line). */
  net?: IdentityNetwork | undefined;
  /** 32 lowercase hex digits (newMachineId()). */
  machineId: string;
  /** CLOCK_REALTIME to set, ns since the epoch (nowNs()). */
  clockNs: bigint;
  /** 1..512 random bytes from the host, mixed into and credited to the guest's pool. */
  entropy: Buffer;
  /** Opens the gate: host keys are generated and sshd starts. */
  openGate: boolean;
  /**
   * RNDRESEEDCRNG after the entropy. false is test-only (config test_skip_reseed): it lets a test show
   * that two guests restored from one template produce the same /dev/urandom output without it.
   */
  reseed: boolean;
  /** Test-only (config test_rng_sample): the agent writes its first random bytes after the reseed step to /run/banger-rng-sample. */
  rngSample?: boolean | undefined;
}

export type IdentityAgent = Pick<AgentClient, 'setIdentity'>;

/** A fresh machine-id (sd-id128 v4 style: 128 random bits as 32 hex digits). */
export function newMachineId(): string {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b.toString('hex');
}

export const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

/** The identity input for one VM with fresh random parts (machine-id, entropy) and the host's clock. */
export function freshIdentity(
  hostname: string,
  net: IdentityNetwork | undefined,
): Omit<RefreshIdentityInput, 'openGate' | 'reseed'> {
  return { hostname, net, machineId: newMachineId(), clockNs: nowNs(), entropy: randomBytes(256) };
}

/** The identity a restored VM gets: fresh parts, the gate opened, the reseed unless the test-only config skips it. */
export function restoreIdentity(
  hostname: string,
  net: IdentityNetwork | undefined,
  cfg: { testSkipReseed?: boolean; testRngSample?: boolean },
): RefreshIdentityInput {
  return {
    ...freshIdentity(hostname, net),
    openGate: true,
    reseed: cfg.testSkipReseed !== true,
    rngSample: cfg.testRngSample === true,
  };
}

/**
 * Right before a template's save: fresh host entropy and a CRNG reseed, so the CRNG state every
 * restore clones was born at the save. The kernel's own next reseed (after half the uptime) then
 * comes seconds after a restore, not at its first read: until the restore's SET_IDENTITY, every
 * clone holds the same known state, which the test-only reseed-off run shows (docs/warm-start.md).
 * A guest that refuses is saved as it is, with a warning.
 */
export async function reseedBeforeSave(agent: IdentityAgent, log: Logger): Promise<void> {
  try {
    await agent.setIdentity({ entropy: randomBytes(64), reseed: true });
  } catch (e) {
    log.warn('the template guest did not reseed its CRNG before the save', { error: errorMessage(e) });
  }
}

/**
 * Applies a restored guest's identity in one SET_IDENTITY: clock, entropy (+ CRNG reseed), hostname,
 * machine-id (journald restarted), network; then, with openGate, the gate opens. The agent answers
 * once all of it is applied; a failure names the step.
 */
export async function refreshIdentity(
  agent: IdentityAgent,
  i: RefreshIdentityInput,
  cfg: { testSkipReseed?: boolean } = {},
): Promise<void> {
  if (!i.reseed && cfg.testSkipReseed !== true) {
    throw badRequest(
      'refreshing an identity without reseeding the guest RNG is test-only',
      'set test_skip_reseed = true in the test config, or pass reseed: true',
    );
  }
  await agent.setIdentity({
    hostname: i.hostname,
    entropy: i.entropy,
    machineId: i.machineId,
    clockNs: i.clockNs,
    ...(i.net ? { network: i.net } : {}),
    reseed: i.reseed,
    openGate: i.openGate,
    ...(i.rngSample ? { rngSample: true } : {}),
  });
}
