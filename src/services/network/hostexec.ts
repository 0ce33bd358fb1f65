import { AppError } from '../../errors.js';
import type { CommandRunner } from '../../system/runner.js';
import { withPrivilege, type HostNetPlan, type NetStep } from './hostplan.js';

/*
 * Runs host-network plans through the runner: apply (fully reverted on
 * failure) and remove (the VM's own steps, never the shared bridge).
 */

export interface NetExecOptions {
  /** Effective uid of the daemon: 0 runs as is, anything else through `sudo -n` (hostplan.withPrivilege). */
  euid: number;
  signal?: AbortSignal;
}

/** Each host command gets at most this long (ip and iptables answer in milliseconds; `-w 5` waits for the xtables lock). */
const STEP_TIMEOUT_MS = 30_000;
/** Most duplicate copies of one rule remove() deletes (a rule added twice by hand, or by an older banger). */
const MAX_RULE_COPIES = 8;

function opts(o: NetExecOptions): { timeoutMs: number; signal?: AbortSignal } {
  return o.signal ? { timeoutMs: STEP_TIMEOUT_MS, signal: o.signal } : { timeoutMs: STEP_TIMEOUT_MS };
}

const PRIVILEGE_HINT =
  'run bangerd as root, allow passwordless sudo for ip, iptables and sysctl, or use network_mode = "user"';

/** A `sudo -n` that needs a password, or no sudo at all: say what is missing and what to do instead. */
function privilegeError(e: unknown, step: NetStep, o: NetExecOptions): unknown {
  if (o.euid === 0 || !(e instanceof AppError)) return e;
  if (e.message.startsWith('sudo is not installed'))
    return new AppError(
      'precondition',
      `bridge networking needs root for: ${step.argv.join(' ')}; the daemon is not root and sudo is not installed`,
      { hint: PRIVILEGE_HINT, cause: e },
    );
  const text = `${e.message}\n${e.detail ?? ''}`;
  if (!/sudo: (a password is required|a terminal is required)|is not in the sudoers|not allowed to execute/.test(text))
    return e;
  return new AppError('precondition', `bridge networking needs root for: ${step.argv.join(' ')}`, {
    hint: PRIVILEGE_HINT,
    cause: e,
  });
}

/** The steps a run actually performed, in order: what a failure rolls back. */
export interface AppliedNet {
  plan: HostNetPlan;
  applied: string[];
  /** Best-effort steps that failed (NetStep.bestEffort), with why; the rest of the plan ran. */
  skipped: string[];
}

/**
 * Applies the plan: a step whose check passes is skipped (so a second start,
 * or a start after a crash, adds nothing twice); a failure undoes the steps
 * this run performed, newest first, shared ones included (a bridge this run
 * made is removed again), and rethrows.
 */
export async function applyHostNet(runner: CommandRunner, plan: HostNetPlan, o: NetExecOptions): Promise<AppliedNet> {
  const done: NetStep[] = [];
  const skipped: string[] = [];
  let current: NetStep | undefined;
  try {
    for (const step of plan.steps) {
      current = step;
      if (step.check) {
        const res = await runner.run(withPrivilege(step.check, o.euid), opts(o));
        if (res.code === 0) continue;
      }
      try {
        await runner.check(withPrivilege(step.argv, o.euid), opts(o));
      } catch (e) {
        if (step.bestEffort && !o.signal?.aborted) {
          skipped.push(`${step.what}: ${e instanceof Error ? e.message : String(e)}`);
          continue;
        }
        // Another start made it between our check and our step (two VMs starting at once, one bridge): not ours to undo.
        const now = step.check
          ? await runner.run(withPrivilege(step.check, o.euid), opts(o)).catch(() => undefined)
          : undefined;
        if (now?.code === 0) continue;
        throw e;
      }
      done.push(step);
    }
    return { plan, applied: done.map((s) => s.what), skipped };
  } catch (e) {
    for (const step of done.reverse()) {
      if (step.undo)
        await runner.run(withPrivilege(step.undo, o.euid), { timeoutMs: STEP_TIMEOUT_MS }).catch(() => undefined);
    }
    throw current ? privilegeError(e, current, o) : e;
  }
}

/**
 * Removes what the plan gave one VM (its NAT rule, its tap), whatever a
 * previous run left: each undo runs even if its step was skipped or never
 * ran; a rule is deleted while its check still finds it. The shared bridge
 * and forwarding stay (the sweep removes an idle bridge). Never throws for
 * something already gone; returns what it could not remove.
 */
export async function removeHostNet(runner: CommandRunner, plan: HostNetPlan, o: NetExecOptions): Promise<string[]> {
  const failed: string[] = [];
  for (const step of [...plan.steps].reverse()) {
    if (step.shared || !step.undo) continue;
    if (step.check) {
      for (let i = 0; i < MAX_RULE_COPIES; i++) {
        const present = await runner.run(withPrivilege(step.check, o.euid), opts(o)).catch(() => undefined);
        if (!present || present.code !== 0) break;
        const res = await runner.run(withPrivilege(step.undo, o.euid), opts(o)).catch(() => undefined);
        if (!res || res.code !== 0) {
          failed.push(step.what);
          break;
        }
      }
    } else {
      await runner.run(withPrivilege(step.undo, o.euid), opts(o)).catch(() => undefined);
    }
  }
  return failed;
}
