import { Transform, type Readable } from 'node:stream';

const MIB = 1048576;

/** `applying mmdebstrap: 123 MiB read, 4.1 MiB/s` — a layer's progress without a known total. */
export function layerProgressMessage(label: string, bytes: number, elapsedMs: number): string {
  const mib = bytes / MIB;
  const rate = elapsedMs > 0 ? mib / (elapsedMs / 1000) : 0;
  return `applying ${label}: ${mib < 10 ? mib.toFixed(1) : Math.round(mib)} MiB read, ${rate.toFixed(1)} MiB/s`;
}

/**
 * `src` with its bytes counted: `report(message)` at most once per `everyMs` (2 s) while bytes flow
 * (the tar stream of a build has no known length, so a percentage would sit at 0 % until done).
 */
export function meteredLayer(
  src: Readable,
  label: string,
  report: (message: string) => void,
  opts: { everyMs?: number; now?: () => number } = {},
): Readable {
  const now = opts.now ?? Date.now;
  const every = opts.everyMs ?? 2000;
  const t0 = now();
  let bytes = 0;
  let last = t0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      const t1 = now();
      if (t1 - last >= every) {
        last = t1;
        report(layerProgressMessage(label, bytes, t1 - t0));
      }
      cb(null, chunk);
    },
  });
  src.on('error', (e: Error) => t.destroy(e));
  return src.pipe(t);
}
