import { badRequest } from '../errors.js';

const MODULE_SUFFIX = /\.ko(?:\.(?:xz|zst|gz))?$/;

/**
 * Parses depmod's modules.dep text ('mod.ko: dep1.ko dep2.ko' per line) into
 * module path → dependency paths, in file order. Blank lines and '#' comments
 * are skipped; lines without a ':' are rejected.
 */
export function parseModulesDep(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      throw badRequest(
        `modules.dep line ${i + 1} is malformed: ${JSON.stringify(line)}`,
        'expected "path.ko: dep.ko ..."; regenerate it with depmod',
      );
    }
    const path = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .split(/\s+/)
      .filter((d) => d !== '');
    out.set(path, deps);
  }
  return out;
}

/**
 * Module name from a module path: the file name without '.ko' and any
 * compression suffix, with '-' normalised to '_' (the kernel treats them alike).
 */
export function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base.replace(MODULE_SUFFIX, '').replaceAll('-', '_');
}

/** Parses modules.builtin (one module path per line) into a set of module names. */
export function parseModulesBuiltin(text: string): Set<string> {
  const out = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    out.add(moduleName(line));
  }
  return out;
}

/**
 * Load order (module paths) for the wanted module names: every dependency
 * precedes its dependents, duplicates are dropped, and the result depends only
 * on the inputs. Wanted modules that are built into the kernel are omitted; a
 * wanted module that is neither builtin nor in `dep` is a badRequest.
 *
 * Each module's dependencies are visited in reverse modules.dep order (depmod
 * lists the deepest dependency last) and each is expanded through its own
 * modules.dep line, so the order holds even if a line is not perfectly sorted.
 */
export function loadOrder(dep: Map<string, string[]>, builtin: Set<string>, wanted: readonly string[]): string[] {
  const byName = new Map<string, string>();
  for (const path of dep.keys()) {
    const name = moduleName(path);
    if (!byName.has(name)) byName.set(name, path);
  }

  const order: string[] = [];
  const done = new Set<string>();
  const inProgress = new Set<string>();

  const visit = (path: string): void => {
    if (done.has(path) || inProgress.has(path)) return;
    inProgress.add(path);
    const deps = dep.get(path) ?? [];
    for (let i = deps.length - 1; i >= 0; i--) {
      const d = deps[i];
      if (d !== undefined) visit(d);
    }
    inProgress.delete(path);
    done.add(path);
    order.push(path);
  };

  for (const w of wanted) {
    const name = moduleName(w);
    const path = byName.get(name);
    if (path === undefined) {
      if (builtin.has(name)) continue;
      throw badRequest(
        `kernel module "${name}" is not available: the kernel lacks it (neither built in nor in modules.dep)`,
        'use a kernel that builds this driver in or ships it as a module',
      );
    }
    visit(path);
  }
  return order;
}
