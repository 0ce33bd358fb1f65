/** The oldest firecracker banger drives (its API shapes and behaviour are what config.ts and test/fakes/firecracker-api.ts follow). */
export const MIN_FIRECRACKER_VERSION = '1.5.0';

export interface FirecrackerVersionCheck {
  /** "1.7.0" (or "1.8.0-dev"); empty when no version was found. */
  version: string;
  ok: boolean;
  /** Why it is not ok. */
  message?: string;
}

interface Parsed {
  core: [number, number, number];
  pre: string | undefined;
}

const VERSION_RE = /\bv?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?/;

function parse(text: string): Parsed | undefined {
  // `firecracker --version` prints "Firecracker v1.7.0" first; GET /version gives the bare "1.7.0".
  const line = text.split('\n').find((l) => VERSION_RE.test(l));
  const m = line === undefined ? null : VERSION_RE.exec(line);
  if (m === null) return undefined;
  return { core: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] };
}

/** Semver order of the core numbers; a pre-release sorts before its release (1.5.0-dev < 1.5.0). */
function compare(a: Parsed, b: Parsed): number {
  for (let i = 0; i < 3; i++) {
    const d = (a.core[i] as number) - (b.core[i] as number);
    if (d !== 0) return d;
  }
  if (a.pre === b.pre) return 0;
  if (a.pre === undefined) return 1;
  if (b.pre === undefined) return -1;
  return a.pre < b.pre ? -1 : 1;
}

const show = (p: Parsed): string => p.core.join('.') + (p.pre === undefined ? '' : `-${p.pre}`);

/** Parses `firecracker --version` output (or a bare version) and checks it against MIN_FIRECRACKER_VERSION. */
export function checkFirecrackerVersion(text: string): FirecrackerVersionCheck {
  const p = parse(text);
  if (p === undefined) {
    const first = text.trim().split('\n')[0] ?? '';
    return {
      version: '',
      ok: false,
      message: `cannot find a version in firecracker's output${first ? `: ${JSON.stringify(first)}` : ''}`,
    };
  }
  const version = show(p);
  if (compare(p, parse(MIN_FIRECRACKER_VERSION) as Parsed) < 0) {
    return {
      version,
      ok: false,
      message: `firecracker ${version} is too old; banger needs ${MIN_FIRECRACKER_VERSION} or later`,
    };
  }
  return { version, ok: true };
}
