import { alreadyExists, badRequest, notFound, type AppError } from '../../errors.js';
import type { VmRepo, VmRow } from '../../store/vms.js';

const MAX = 63;

/**
 * SPEC §4: 1–63 chars of a-z, 0-9 and '-', no leading or trailing '-', no
 * normalisation. Returns an error message naming the position, or undefined.
 */
export function vmNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (name.length > MAX) return `the name is ${name.length} characters long; the limit is ${MAX}`;
  const chars = [...name]; // code points: a character outside the BMP is one character, not two halves
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    if (!/[a-z0-9-]/.test(c)) {
      const shown = /[\x00-\x1f\x7f]/.test(c) ? JSON.stringify(c) : `"${c}"`;
      return `character ${shown} at position ${i + 1} is not allowed (use a-z, 0-9 and -)`;
    }
  }
  if (name.startsWith('-')) return 'the name must not start with "-"';
  if (name.endsWith('-')) return 'the name must not end with "-"';
  return undefined;
}

export function validateVmName(name: string): void {
  const problem = vmNameProblem(name);
  if (problem)
    throw badRequest(
      `invalid VM name ${JSON.stringify(name)}: ${problem}`,
      'VM names are 1-63 characters of a-z, 0-9 and "-", e.g. dev-1',
    );
}

const ADJECTIVES = [
  'amber',
  'bold',
  'brisk',
  'calm',
  'clever',
  'cosy',
  'crisp',
  'dapper',
  'eager',
  'fancy',
  'gentle',
  'happy',
  'jolly',
  'keen',
  'lively',
  'lucky',
  'merry',
  'misty',
  'nimble',
  'plucky',
  'proud',
  'quiet',
  'rapid',
  'shiny',
  'snug',
  'sunny',
  'swift',
  'tidy',
  'vivid',
  'witty',
  'zesty',
  'breezy',
];
const NOUNS = [
  'otter',
  'badger',
  'falcon',
  'heron',
  'lynx',
  'marten',
  'newt',
  'owl',
  'panda',
  'puffin',
  'quokka',
  'raven',
  'robin',
  'seal',
  'stoat',
  'tapir',
  'tern',
  'toad',
  'vole',
  'walrus',
  'wombat',
  'yak',
  'zebra',
  'bison',
  'crane',
  'dingo',
  'egret',
  'ferret',
  'gecko',
  'ibis',
  'koala',
  'lemur',
];

/** A friendly name like calm-otter; `taken` decides collisions (a numeric suffix follows after a few tries). */
export function generateName(taken: (n: string) => boolean, random: () => number = Math.random): string {
  const pick = (xs: string[]): string => xs[Math.floor(random() * xs.length)] as string;
  for (let i = 0; i < 20; i++) {
    const n = `${pick(ADJECTIVES)}-${pick(NOUNS)}`;
    if (!taken(n)) return n;
  }
  for (let i = 2; ; i++) {
    const n = `${pick(ADJECTIVES)}-${pick(NOUNS)}-${i}`;
    if (!taken(n)) return n;
  }
}

/** A VM by name, id, or unique id prefix. */
export function resolveRef(vms: Pick<VmRepo, 'byName' | 'get' | 'list'>, ref: string): VmRow {
  const byName = vms.byName(ref) ?? vms.get(ref);
  if (byName) return byName;
  const matches = vms.list().filter((v) => v.id.startsWith(ref));
  if (matches.length === 1) return matches[0] as VmRow;
  if (matches.length > 1) {
    throw badRequest(
      `"${ref}" matches ${matches.length} VMs: ${matches.map((m) => m.name).join(', ')}`,
      'use the full name or a longer id prefix',
    );
  }
  throw notFound(`no VM named "${ref}"`, 'run `banger vm list` to see your VMs');
}

export interface ResolvedRef {
  ref: string;
  id?: string;
  name?: string;
  error?: { code: string; message: string; hint?: string };
}

/** Resolves several refs against one snapshot of the VM table (multi-target verbs); a bad ref carries its error. */
export function resolveRefs(vms: Pick<VmRepo, 'byName' | 'get' | 'list'>, refs: readonly string[]): ResolvedRef[] {
  return refs.map((ref) => {
    try {
      const vm = resolveRef(vms, ref);
      return { ref, id: vm.id, name: vm.name };
    } catch (e) {
      const err = e as AppError;
      return { ref, error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) } };
    }
  });
}

/** Refuses a name a VM has already (create, before anything is made). */
export function checkNameFree(vms: Pick<VmRepo, 'byName'>, name: string | undefined): void {
  if (name && vms.byName(name))
    throw alreadyExists(
      `a VM named "${name}" already exists`,
      `pick another --name or delete it with \`banger vm delete ${name}\``,
    );
}

/** Inserts a new VM's row; a name taken meanwhile (a concurrent create) is the same error. */
export function insertRow(vms: Pick<VmRepo, 'insert'>, row: VmRow): void {
  try {
    vms.insert(row);
  } catch (e) {
    if (String(e).includes('UNIQUE'))
      throw alreadyExists(`a VM named "${row.name}" already exists`, 'pick another --name');
    throw e;
  }
}
