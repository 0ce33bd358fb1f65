import { errorMessage } from '../../errors.js';
import type { ImageRow } from '../../store/images.js';
import type { VmRow } from '../../store/vms.js';
import type { Logger, OpContext } from '../context.js';
import type { WarmStart } from './warm.js';

/* Background templates (issue 17, SPEC §7.6): after the first cold boot of a VM of the configured
   default spec, the daemon makes that spec's template by the same throwaway boot as `image warm`
   (which joins it), one at a time, never delaying the command that booted the VM. */

/** What decides whether a finished create starts a background template build. */
export interface BackgroundCase {
  /** Config warm_start_background. */
  background: boolean;
  /** Config warm_start. */
  warmStart: boolean;
  /** The create booted the VM (not `--no-start`). */
  started: boolean;
  /** How its first start was chosen (warm.ts choose, or a snapshot's restore). */
  choice: { tpl?: unknown; missing?: unknown };
  /** The VM's image is the configured default image. */
  defaultImage: boolean;
  /** vCPU, memory, disk and overlay sizes are those `image warm` makes templates for. */
  defaultShape: boolean;
  /** A background build of this image failed before (not retried until the daemon restarts). */
  failedBefore: boolean;
  /** A background build is running (one at a time). */
  running: boolean;
}

export type BackgroundDecision = { build: true } | { build: false; why: string };

/** Pure: whether a finished create starts a background template build, and if not, why. */
export function backgroundDecision(c: BackgroundCase): BackgroundDecision {
  const no = (why: string): BackgroundDecision => ({ build: false, why });
  if (!c.background) return no('warm_start_background = false');
  if (!c.warmStart) return no('warm_start = false');
  if (!c.started) return no('the VM was not started');
  if (c.choice.tpl) return no('the VM was restored, not booted cold');
  // Covers --cold, firecracker, bridge mode and keys that could not be computed: no template would serve them.
  if (!c.choice.missing) return no('the VM booted cold for another reason than a missing template');
  if (!c.defaultImage) return no('not the default image');
  if (!c.defaultShape) return no('not the default VM sizes');
  if (c.failedBefore) return no('a background build of this image failed before');
  if (c.running) return no('a background build is running');
  return { build: true };
}

/** Whether `row` has the sizes of the template `image warm` makes (vm_defaults; the image's overlay). */
export function hasShape(row: VmRow, shape: ReturnType<WarmStart['defaultShape']>): boolean {
  return (
    row.vcpu === shape.vcpu &&
    row.memoryMib === shape.memoryMib &&
    row.accel === shape.accel &&
    row.diskBytes === shape.diskBytes &&
    row.overlayBytes === shape.overlayBytes
  );
}

export interface BackgroundDeps {
  config: { warmStart: boolean; warmStartBackground: boolean; defaultImageName: string };
  warm: Pick<WarmStart, 'warm' | 'defaultShape'>;
  log: Logger;
}

/** Starts background template builds (backgroundDecision); the daemon's shutdown stops them (WarmStart.halt). */
export class BackgroundWarm {
  private running: Promise<void> | undefined;
  private readonly failed = new Set<string>();

  constructor(private readonly d: BackgroundDeps) {}

  /** After a VM's first start booted cold for want of a template (`image`'s): starts a build when backgroundDecision says so; returns at once. */
  afterColdStart(row: VmRow, image: ImageRow): void {
    const cfg = this.d.config;
    const choice = { missing: true };
    const c: BackgroundCase = {
      background: cfg.warmStartBackground,
      warmStart: cfg.warmStart,
      started: true,
      choice,
      defaultImage: image.name === cfg.defaultImageName,
      defaultShape: hasShape(row, this.d.warm.defaultShape(image)),
      failedBefore: this.failed.has(image.id),
      running: this.running !== undefined,
    };
    const d = backgroundDecision(c);
    if (!d.build) return this.d.log.debug('no background template build', { image: image.name, why: d.why });
    this.d.log.info('making a template in the background after a cold boot of the default VM spec', {
      image: image.name,
      vm: row.name,
    });
    const started_ = Date.now();
    const ctx: OpContext = {
      opId: `warm-background-${row.id.slice(0, 8)}`,
      signal: new AbortController().signal,
      progress: (ev) => this.d.log.debug('background template', { image: image.name, ...ev }),
    };
    this.running = this.d.warm
      .warm(image.name, ctx)
      .then((r) =>
        this.d.log.info('background template ready', {
          image: image.name,
          key: r.template.key,
          built: r.built,
          seconds: Math.round((Date.now() - started_) / 1000),
        }),
      )
      .catch((e: unknown) => {
        this.failed.add(image.id);
        this.d.log.warn('background template build failed; VMs of this spec keep booting cold', {
          image: image.name,
          error: errorMessage(e),
          hint: `run \`banger image warm ${image.name}\` to see why`,
        });
      })
      .finally(() => {
        this.running = undefined;
      });
  }
}
