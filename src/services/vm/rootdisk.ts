import { join } from 'node:path';
import { AppError, errorMessage } from '../../errors.js';
import { vmFiles } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';

/** How a VM's root disk is made copy-on-write over the shared base (SPEC §7.1), in order of preference. */
export const ROOT_STRATEGIES = ['qcow2-overlay', 'reflink', 'dm-snapshot', 'sparse-copy'] as const;
export type RootStrategy = (typeof ROOT_STRATEGIES)[number];

export function isRootStrategy(s: string): s is RootStrategy {
  return (ROOT_STRATEGIES as readonly string[]).includes(s);
}

/** The disk format a strategy makes: only the overlay is qcow2. */
export function rootDiskFormat(s: RootStrategy): 'qcow2' | 'raw' {
  return s === 'qcow2-overlay' ? 'qcow2' : 'raw';
}

/** One host step with the step that undoes it. */
export interface PlanStep {
  what: string;
  argv: string[];
  undo?: string[];
}

export interface RootDiskPlan {
  strategy: RootStrategy;
  /** Path the VMM opens. */
  path: string;
  format: 'qcow2' | 'raw';
  steps: PlanStep[];
}

export interface RootDiskInput {
  base: string;
  /** The VM dir: each plan names its files in it (vmFiles), raw copies root.raw, overlays root.qcow2. */
  dir: string;
  sizeBytes: number;
  vmId: string;
}

/** Pure builders, one per strategy. */
export const rootDiskPlans = {
  'qcow2-overlay': (i: RootDiskInput): RootDiskPlan => {
    const target = join(i.dir, vmFiles.rootQcow2);
    return {
      strategy: 'qcow2-overlay',
      path: target,
      format: 'qcow2',
      steps: [
        {
          what: 'qcow2 overlay',
          argv: ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', i.base, target, String(i.sizeBytes)],
          undo: ['rm', '-f', target],
        },
      ],
    };
  },
  reflink: (i: RootDiskInput): RootDiskPlan => {
    const target = join(i.dir, vmFiles.rootRaw);
    return {
      strategy: 'reflink',
      path: target,
      format: 'raw',
      steps: [
        { what: 'reflink copy', argv: ['cp', '--reflink=always', i.base, target], undo: ['rm', '-f', target] },
        { what: 'grow to overlay size', argv: ['truncate', '-s', `>${i.sizeBytes}`, target] },
      ],
    };
  },
  /**
   * A device-mapper snapshot: the base read-only on one loop device, a sparse
   * COW file on another, `dmsetup create` joining them. Needs root (or sudo -n)
   * and the dm module; device names are per VM so undo is exact.
   */
  'dm-snapshot': (i: RootDiskInput): RootDiskPlan => {
    const name = `banger-${i.vmId.slice(0, 12)}`;
    const cow = join(i.dir, vmFiles.rootCow);
    const sectors = Math.ceil(i.sizeBytes / 512);
    return {
      strategy: 'dm-snapshot',
      path: `/dev/mapper/${name}`,
      format: 'raw',
      steps: [
        { what: 'COW file', argv: ['truncate', '-s', String(i.sizeBytes), cow], undo: ['rm', '-f', cow] },
        {
          what: 'base loop device',
          argv: ['losetup', '--find', '--show', '--read-only', i.base],
          undo: ['losetup', '-d', '{base_loop}'],
        },
        { what: 'COW loop device', argv: ['losetup', '--find', '--show', cow], undo: ['losetup', '-d', '{cow_loop}'] },
        {
          what: 'snapshot target',
          argv: ['dmsetup', 'create', name, '--table', `0 ${sectors} snapshot {base_loop} {cow_loop} P 8`],
          undo: ['dmsetup', 'remove', name],
        },
      ],
    };
  },
  'sparse-copy': (i: RootDiskInput): RootDiskPlan => {
    const target = join(i.dir, vmFiles.rootRaw);
    return {
      strategy: 'sparse-copy',
      path: target,
      format: 'raw',
      steps: [
        { what: 'sparse copy', argv: ['cp', '--sparse=always', i.base, target], undo: ['rm', '-f', target] },
        { what: 'grow to overlay size', argv: ['truncate', '-s', `>${i.sizeBytes}`, target] },
      ],
    };
  },
} as const;

/** The strategies to try, best first: qcow2 only when the VMM reads it; dm only when privileged and present. */
export function strategyOrder(o: { vmmReadsQcow2: boolean; dmUsable: boolean }): RootStrategy[] {
  const order: RootStrategy[] = [];
  if (o.vmmReadsQcow2) order.push('qcow2-overlay');
  order.push('reflink');
  if (o.dmUsable) order.push('dm-snapshot');
  order.push('sparse-copy');
  return order;
}

const fill = (argv: readonly string[], vars: Record<string, string>): string[] =>
  argv.map((a) => a.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m));

/**
 * Runs a plan: each step's stdout may define a variable (`losetup --show`
 * prints the device); a failure runs the undos of the completed steps in
 * reverse and rethrows.
 */
export async function executePlan(
  runner: CommandRunner,
  plan: RootDiskPlan,
  signal?: AbortSignal,
): Promise<{ path: string; vars: Record<string, string> }> {
  const vars: Record<string, string> = {};
  const done: PlanStep[] = [];
  try {
    for (const step of plan.steps) {
      const res = await runner.check(fill(step.argv, vars), signal ? { signal } : {});
      if (step.what === 'base loop device') vars.base_loop = res.stdout.trim();
      if (step.what === 'COW loop device') vars.cow_loop = res.stdout.trim();
      done.push(step);
    }
    return { path: plan.path, vars };
  } catch (e) {
    for (const step of done.reverse()) {
      if (step.undo) await runner.run(fill(step.undo, vars)).catch(() => undefined);
    }
    throw e;
  }
}

/** Undo a completed plan (VM delete). */
export async function undoPlan(runner: CommandRunner, plan: RootDiskPlan, vars: Record<string, string>): Promise<void> {
  for (const step of [...plan.steps].reverse()) {
    if (step.undo) await runner.run(fill(step.undo, vars)).catch(() => undefined);
  }
}

/** Tries the strategies in order; a failed one (e.g. no reflink support on this filesystem) falls through to the next. */
export async function makeRootDisk(
  runner: CommandRunner,
  input: RootDiskInput,
  order: readonly RootStrategy[],
  signal?: AbortSignal,
): Promise<{ plan: RootDiskPlan; vars: Record<string, string> }> {
  const errors: string[] = [];
  for (const s of order) {
    const plan = rootDiskPlans[s](input);
    try {
      const { vars } = await executePlan(runner, plan, signal);
      return { plan, vars };
    } catch (e) {
      if (e instanceof AppError && e.code === 'cancelled') throw e;
      const detail = e instanceof AppError && e.detail ? ` (${e.detail.split('\n').pop()})` : '';
      errors.push(`${s}: ${errorMessage(e)}${detail}`);
    }
  }
  throw new AppError('operation_failed', 'could not make the VM root disk with any strategy', {
    detail: errors.join('\n'),
    hint: errors.join('\n'),
  });
}
