import { createReadStream } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack, type Header, type Pack } from 'tar-stream';
import { badRequest, operationFailed } from '../../errors.js';
import { fastLinkTarget, parseLsP, splitByCommand, type ListedEntry } from '../../ext4/listing.js';
import type { CommandRunner } from '../../system/runner.js';
import type { LayerInput } from './pipeline.js';

/*
 * A bundle arrives as a finished, untrusted rootfs.ext4. Its /root (the
 * work-seed) is read out with debugfs by inode number — `ls -p`, `stat` and
 * `dump <ino> <name banger chose>` — and re-packed as a tar that goes through
 * the same Flattener as every image layer. debugfs never writes a path the
 * image shaped (unlike `rdump`, which follows a symlink it has just created
 * when a directory holds the same name twice), and every size is bounded.
 */

const ROOT_INO = 2;
/** Entries (files, dirs, links) a bundle's /root may hold. */
const MAX_ENTRIES = 100_000;
const MAX_DEPTH = 64;
const MAX_SYMLINK_BYTES = 4095;
/** Id fields above this do not fit a ustar header and travel as PAX records. */
const USTAR_MAX_ID = 0o7777777;

type Headers = Partial<Header> & Pick<Header, 'name'>;

const BUNDLE_HINT = 're-create the bundle with `banger image export` from a healthy image';

export interface SubtreeLimits {
  /** Total bytes of regular files (the image's max_unpacked_size). */
  maxBytes: number;
}

interface Node {
  rel: string;
  entry: ListedEntry;
}

/** `e2fsck -fn`: a bundle's filesystem must be clean before banger reads anything out of it. */
export async function checkCleanExt4(
  runner: CommandRunner,
  image: string,
  label: string,
  signal: AbortSignal,
): Promise<void> {
  const res = await runner.run(['e2fsck', '-fn', image], { signal });
  if (res.code === 0) return;
  // The first problems e2fsck names, without its pass headers, prompts and summary.
  const noise = /^(Pass \d|e2fsck \d)|\*{5}|non-contiguous\)|\? no$|^\s/;
  const problems = `${res.stdout}\n${res.stderr}`
    .split('\n')
    .filter((l) => l.trim() !== '' && !noise.test(l))
    .slice(0, 3)
    .join('; ');
  throw badRequest(
    `${label} is not a clean ext4 filesystem (e2fsck -fn exited ${res.code}): ${problems || 'see e2fsck -fn'}`,
    BUNDLE_HINT,
  );
}

async function debugfsScript(
  runner: CommandRunner,
  image: string,
  commands: string[],
  signal: AbortSignal,
  cwd?: string,
): Promise<string[]> {
  const res = await runner.run(['debugfs', '-f', '-', image], {
    input: `${commands.join('\n')}\n`,
    signal,
    ...(cwd === undefined ? {} : { cwd }),
  });
  if (res.code !== 0)
    throw operationFailed(`debugfs could not read ${image} (exit ${res.code}): ${res.stderr.slice(-300)}`);
  return splitByCommand(res.stdout, commands);
}

/**
 * Lists /root of `image` (breadth first, parents before children). Undefined
 * when the image has no /root; a /root that is not a directory, a name that
 * appears twice in one directory, a directory reached twice, and more than
 * the limits allow are refused naming the path.
 */
export async function listRootSubtree(
  runner: CommandRunner,
  image: string,
  label: string,
  limits: SubtreeLimits,
  signal: AbortSignal,
): Promise<Node[] | undefined> {
  const refuse = (what: string): never => {
    throw badRequest(`${label}: ${what}`, BUNDLE_HINT);
  };
  const parse = (out: string, dir: string): ListedEntry[] => {
    try {
      return parseLsP(out);
    } catch (e) {
      return refuse(`cannot read directory /${dir}: ${(e as Error).message}`);
    }
  };
  const [top] = await debugfsScript(runner, image, [`ls -p <${ROOT_INO}>`], signal);
  const roots = parse(top ?? '', '').filter((e) => e.name === 'root');
  if (roots.length > 1) refuse('/ holds two entries named root');
  const root = roots[0];
  if (root === undefined) return undefined;
  if (root.type !== 'dir')
    refuse(
      `/root is a ${root.type === 'symlink' ? 'symlink' : 'non-directory'}, not a directory; banger will not copy anything it points at`,
    );

  const nodes: Node[] = [];
  const seenDirs = new Set<number>([ROOT_INO, root.ino]);
  let bytes = 0;
  let level: Node[] = [{ rel: 'root', entry: root }];
  for (let depth = 0; level.length > 0; depth++) {
    if (depth > MAX_DEPTH) refuse(`/root is nested deeper than ${MAX_DEPTH} directories`);
    const commands = level.map((d) => `ls -p <${d.entry.ino}>`);
    let outputs: string[];
    try {
      outputs = await debugfsScript(runner, image, commands, signal);
    } catch (e) {
      return refuse(`cannot list /root: ${(e as Error).message}`);
    }
    const next: Node[] = [];
    for (const [i, dir] of level.entries()) {
      const names = new Set<string>();
      for (const entry of parse(outputs[i] ?? '', dir.rel)) {
        const rel = `${dir.rel}/${entry.name}`;
        if (names.has(entry.name)) refuse(`/${dir.rel} holds two entries named ${JSON.stringify(entry.name)}`);
        names.add(entry.name);
        if (nodes.length >= MAX_ENTRIES) refuse(`/root holds more than ${MAX_ENTRIES} entries`);
        if (entry.type === 'dir') {
          if (seenDirs.has(entry.ino)) refuse(`directory /${rel} is linked twice`);
          seenDirs.add(entry.ino);
          next.push({ rel, entry });
        }
        if (entry.type === 'file') bytes += entry.size;
        if (bytes > limits.maxBytes) refuse(`/root holds more than ${limits.maxBytes} bytes (max_unpacked_size)`);
        if (entry.type === 'symlink' && entry.size > MAX_SYMLINK_BYTES)
          refuse(`symlink /${rel} is ${entry.size} bytes long`);
        nodes.push({ rel, entry });
      }
    }
    level = next;
  }
  return [{ rel: 'root', entry: root }, ...nodes];
}

/** Symlink targets: fast ones from `stat`, slow ones dumped like files. */
async function symlinkTargets(
  runner: CommandRunner,
  image: string,
  links: Node[],
  scratch: string,
  label: string,
  signal: AbortSignal,
): Promise<Map<number, Buffer>> {
  const targets = new Map<number, Buffer>();
  if (links.length === 0) return targets;
  const stats = await debugfsScript(
    runner,
    image,
    links.map((l) => `stat <${l.entry.ino}>`),
    signal,
  );
  const slow: Node[] = [];
  for (const [i, l] of links.entries()) {
    let t: Buffer | undefined;
    try {
      t = fastLinkTarget(Buffer.from(stats[i] ?? '', 'latin1'), l.entry.size);
    } catch (e) {
      throw badRequest(`${label}: symlink /${l.rel}: ${(e as Error).message}`, BUNDLE_HINT);
    }
    if (t === undefined) slow.push(l);
    else targets.set(l.entry.ino, t);
  }
  await dumpInodes(runner, image, slow, scratch, label, signal);
  for (const l of slow) targets.set(l.entry.ino, await readFile(join(scratch, String(l.entry.ino))));
  return targets;
}

/** `dump <ino> <ino>` into `scratch` (a private dir banger made; the names are banger's). Each result must be a regular file of the listed size. */
async function dumpInodes(
  runner: CommandRunner,
  image: string,
  nodes: Node[],
  scratch: string,
  label: string,
  signal: AbortSignal,
): Promise<void> {
  const unique = [...new Map(nodes.map((n) => [n.entry.ino, n])).values()];
  if (unique.length === 0) return;
  await debugfsScript(
    runner,
    image,
    unique.map((n) => `dump <${n.entry.ino}> ${n.entry.ino}`),
    signal,
    scratch,
  );
  for (const n of unique) {
    const st = await lstat(join(scratch, String(n.entry.ino))).catch(() => undefined);
    if (st?.isFile() !== true || st.size !== n.entry.size) {
      throw badRequest(
        `${label}: /${n.rel} could not be read out of the image (${st === undefined ? 'nothing dumped' : `${st.size} of ${n.entry.size} bytes`})`,
        BUNDLE_HINT,
      );
    }
  }
}

function entryDone(p: Pack, header: Headers, body?: Buffer): Promise<void> {
  return new Promise((res, rej) => {
    const cb = (err?: Error | null): void => (err ? rej(err) : res());
    if (body === undefined) p.entry(header, cb);
    else p.entry(header, body, cb);
  });
}

function ids(e: ListedEntry): { uid: number; gid: number; pax?: Record<string, string> } {
  if (e.uid <= USTAR_MAX_ID && e.gid <= USTAR_MAX_ID) return { uid: e.uid, gid: e.gid };
  return { uid: 0, gid: 0, pax: { uid: String(e.uid), gid: String(e.gid) } };
}

/**
 * /root of an untrusted ext4 image as a tar layer (entries under 'root/'),
 * ready for the Flattener; undefined when the image has no /root. Regular
 * files and slow symlink targets are dumped into `scratch` first.
 */
export async function rootSubtreeLayer(
  runner: CommandRunner,
  image: string,
  scratch: string,
  label: string,
  limits: SubtreeLimits,
  signal: AbortSignal,
): Promise<LayerInput | undefined> {
  const nodes = await listRootSubtree(runner, image, label, limits, signal);
  if (nodes === undefined) return undefined;
  const targets = await symlinkTargets(
    runner,
    image,
    nodes.filter((n) => n.entry.type === 'symlink'),
    scratch,
    label,
    signal,
  );
  await dumpInodes(
    runner,
    image,
    nodes.filter((n) => n.entry.type === 'file'),
    scratch,
    label,
    signal,
  );
  return {
    label: `${label} /root`,
    open: async () => {
      const tar = pack();
      const feed = async (): Promise<void> => {
        const primary = new Map<number, string>();
        for (const { rel, entry: e } of nodes) {
          const base = { name: rel, mode: e.mode, ...ids(e) };
          if (e.type === 'dir') await entryDone(tar, { ...base, type: 'directory' });
          else if (e.type === 'symlink')
            await entryDone(tar, {
              ...base,
              type: 'symlink',
              linkname: (targets.get(e.ino) ?? Buffer.alloc(0)).toString('utf8'),
            });
          else if (e.type === 'file') {
            const first = primary.get(e.ino);
            if (first !== undefined) {
              await entryDone(tar, { ...base, type: 'link', linkname: first });
              continue;
            }
            primary.set(e.ino, rel);
            const entry = tar.entry({ ...base, type: 'file', size: e.size });
            await pipeline(createReadStream(join(scratch, String(e.ino))), entry);
          }
          // Devices, fifos and sockets are not carried into the work-seed.
        }
        tar.finalize();
      };
      const finished = feed().catch((err: unknown) => {
        tar.destroy(err instanceof Error ? err : new Error(String(err)));
        throw err;
      });
      return { stream: Readable.from(tar, { objectMode: false }), finished };
    },
  };
}
