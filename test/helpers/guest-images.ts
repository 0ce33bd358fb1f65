import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { pack } from 'tar-stream';
import { REPO } from './home.js';

/* Images without systemd or sshd, for the guest-agent tests. */

export const BUSYBOX = '/bin/busybox';

/** An image of nothing but the host's static busybox: /bin/busybox, /bin/sh, /etc/os-release. */
export async function busyboxTar(): Promise<Buffer> {
  const p = pack();
  p.entry({ name: 'bin/busybox', mode: 0o755 }, readFileSync(BUSYBOX));
  p.entry({ name: 'bin/sh', type: 'symlink', linkname: 'busybox' });
  p.entry({ name: 'etc/os-release', mode: 0o644 }, 'ID=busybox\n');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A Debian bookworm tree of `mmdebstrap --variant=minbase` (no systemd, no sshd) as one tar,
 * built once and cached under .test-cache/.
 */
export function debianMinbaseTar(): string {
  const dir = join(REPO, '.test-cache');
  const out = join(dir, 'debian-minbase-bookworm.tar');
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const r = spawnSync(
    'mmdebstrap',
    ['--mode=auto', '--variant=minbase', '--format=tar', 'bookworm', `${out}.partial`],
    {
      encoding: 'utf8',
      timeout: 15 * 60_000,
    },
  );
  if (r.status !== 0) throw new Error(`mmdebstrap failed: ${(r.stderr ?? '').slice(-2000)}`);
  renameSync(`${out}.partial`, out);
  return out;
}
