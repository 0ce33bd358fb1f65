// Writes dist/build-info.json: the build id half of the version string the CLI and daemon compare.
import { mkdirSync, writeFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

const h = createHash('sha256');
const walk = (dir) => {
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.js')) h.update(p).update(readFileSync(p));
  }
};
walk('dist/src');
mkdirSync('dist', { recursive: true });
writeFileSync('dist/build-info.json', `${JSON.stringify({ build: h.digest('hex').slice(0, 12) })}\n`);
