/*
 * JSON shapes: the key structure of a JSON value (key names, nesting, value
 * types), without its values. A snapshot of shapes pins what the CLI prints
 * with --json while ids, times and sizes vary from run to run.
 *
 * A shape is a type name ("string", "number", "boolean", "null", or several
 * joined by "|"), an object of shapes (a key ending in "?" may be absent),
 * or a one-element array holding the shape of every element ([] when the
 * element shape is not pinned: the array must then be empty).
 */
export type Shape = string | Shape[] | { [key: string]: Shape };

function typeName(v: unknown): string {
  if (v === null) return 'null';
  return typeof v;
}

/** The shape of a value; array elements are merged (keys missing in some become "key?"). */
export function shapeOf(v: unknown): Shape {
  if (Array.isArray(v)) return v.length === 0 ? [] : [v.map(shapeOf).reduce(merge)];
  if (v !== null && typeof v === 'object') {
    const out: Record<string, Shape> = {};
    for (const k of Object.keys(v).sort()) out[k] = shapeOf((v as Record<string, unknown>)[k]);
    return out;
  }
  return typeName(v);
}

function merge(a: Shape, b: Shape): Shape {
  if (typeof a === 'string' && typeof b === 'string')
    return [...new Set([...a.split('|'), ...b.split('|')])].sort().join('|');
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length === 0) return b;
    if (b.length === 0) return a;
    return [merge(a[0] as Shape, b[0] as Shape)];
  }
  if (typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const bare = (k: string): string => k.replace(/\?$/, '');
    const keys = new Set([...Object.keys(a).map(bare), ...Object.keys(b).map(bare)]);
    const out: Record<string, Shape> = {};
    for (const k of [...keys].sort()) {
      const av = a[k] ?? a[`${k}?`];
      const bv = b[k] ?? b[`${k}?`];
      const optional = !(k in a) || !(k in b);
      out[optional ? `${k}?` : k] = av === undefined ? (bv as Shape) : bv === undefined ? av : merge(av, bv);
    }
    return out;
  }
  return 'mixed';
}

/** Every way `v` differs from `shape`, each naming the JSON path; [] when it matches. */
export function shapeMismatches(v: unknown, shape: Shape, path = '$'): string[] {
  if (typeof shape === 'string') {
    const t = typeName(v);
    const ok = shape.split('|').includes(t) && t !== 'object';
    return ok ? [] : [`${path}: expected ${shape}, got ${Array.isArray(v) ? 'array' : t}`];
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(v)) return [`${path}: expected an array, got ${typeName(v)}`];
    if (shape.length === 0)
      return v.length === 0 ? [] : [`${path}: expected an empty array (element shape not pinned)`];
    return v.flatMap((e, i) => shapeMismatches(e, shape[0] as Shape, `${path}[${i}]`));
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    return [`${path}: expected an object, got ${typeName(v)}`];
  const obj = v as Record<string, unknown>;
  const out: string[] = [];
  const known = new Set<string>();
  for (const [key, sub] of Object.entries(shape)) {
    const optional = key.endsWith('?');
    const k = optional ? key.slice(0, -1) : key;
    known.add(k);
    if (!(k in obj)) {
      if (!optional) out.push(`${path}.${k}: missing`);
      continue;
    }
    out.push(...shapeMismatches(obj[k], sub, `${path}.${k}`));
  }
  for (const k of Object.keys(obj)) if (!known.has(k)) out.push(`${path}.${k}: unexpected key`);
  return out;
}
