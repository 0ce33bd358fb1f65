/**
 * Per-image leases on an image's rootfs file: shared while a VM's root disk is
 * made from it (an overlay or a copy), exclusive while `image refresh` checks
 * that no VM uses the image and swaps the file. A create either makes its root
 * disk before the swap's check (its row exists by then, so the refresh is
 * refused) or after the swap (over the new rootfs), never in between.
 * Waiters are served in arrival order, so a stream of creates cannot starve a
 * refresh. In-process only: one daemon owns the state dir.
 */
export type Release = () => void;

interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

interface LeaseState {
  shared: number;
  exclusive: boolean;
  queue: Waiter[];
}

export class ImageLeases {
  readonly #state = new Map<string, LeaseState>();

  /** Waits for a shared lease on the image's rootfs (no swap runs until it is released). */
  shared(imageId: string): Promise<Release> {
    return this.#acquire(imageId, false);
  }

  /** Waits for the exclusive lease on the image's rootfs (no root disk is being made from it meanwhile). */
  exclusive(imageId: string): Promise<Release> {
    return this.#acquire(imageId, true);
  }

  /** How many acquisitions wait for this image (diagnostics and tests). */
  waiting(imageId: string): number {
    return this.#state.get(imageId)?.queue.length ?? 0;
  }

  /** Runs fn under a shared lease, released however fn ends. */
  async withShared<T>(imageId: string, fn: () => Promise<T>): Promise<T> {
    const release = await this.shared(imageId);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Runs fn under the exclusive lease, released however fn ends. */
  async withExclusive<T>(imageId: string, fn: () => Promise<T>): Promise<T> {
    const release = await this.exclusive(imageId);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  #acquire(id: string, exclusive: boolean): Promise<Release> {
    let s = this.#state.get(id);
    if (s === undefined) {
      s = { shared: 0, exclusive: false, queue: [] };
      this.#state.set(id, s);
    }
    const st = s;
    return new Promise<Release>((resolve) => {
      st.queue.push({
        exclusive,
        grant: () => {
          let released = false;
          resolve(() => {
            if (released) return;
            released = true;
            if (exclusive) st.exclusive = false;
            else st.shared--;
            this.#pump(id, st);
          });
        },
      });
      this.#pump(id, st);
    });
  }

  /** Grants from the head of the queue while compatible with what is held. */
  #pump(id: string, s: LeaseState): void {
    for (;;) {
      const next = s.queue[0];
      if (next === undefined) break;
      if (s.exclusive || (next.exclusive && s.shared > 0)) break;
      s.queue.shift();
      if (next.exclusive) s.exclusive = true;
      else s.shared++;
      next.grant();
    }
    if (s.queue.length === 0 && s.shared === 0 && !s.exclusive) this.#state.delete(id);
  }
}
