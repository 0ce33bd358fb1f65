import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import type { TokenCheck } from './http.js';

/*
 * The TCP listener's bearer token (docs/http-api.md): one random token in a 0600 file in the
 * state dir (paths.ts apiToken), made on first use, replaced by `banger api token --rotate`.
 */

/** Longer than any token we make; a file beyond it is not ours. */
const MAX_TOKEN_BYTES = 256;

const newToken = (): string => randomBytes(32).toString('base64url');

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * Whether an Authorization header carries `token` as a bearer token. Both sides are hashed
 * to equal length and compared in constant time: the time taken says nothing of how much matched.
 */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(authorization ?? '');
  if (!m || token === '') return false;
  return timingSafeEqual(digest(m[1] as string), digest(token));
}

export class ApiToken implements TokenCheck {
  private token: string | undefined;

  constructor(readonly path: string) {}

  /** The token, read from its file, or made (and written 0600) if there is none yet. */
  async get(): Promise<string> {
    if (this.token !== undefined) return this.token;
    const read = await this.read();
    this.token = read ?? (await this.write(newToken()));
    return this.token;
  }

  /** A new token; the old one stops working at once. */
  async rotate(): Promise<string> {
    this.token = await this.write(newToken());
    return this.token;
  }

  check(authorization: string | undefined): boolean {
    return this.token !== undefined && bearerMatches(authorization, this.token);
  }

  private async read(): Promise<string | undefined> {
    let fh;
    try {
      // Never through a link someone planted.
      fh = await open(this.path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size > MAX_TOKEN_BYTES || (st.mode & 0o077) !== 0) return undefined; // remade below
      const text = (await fh.readFile('utf8')).trim();
      return text === '' ? undefined : text;
    } finally {
      await fh.close();
    }
  }

  private async write(token: string): Promise<string> {
    const tmp = `${this.path}.${process.pid}.tmp`;
    await rm(tmp, { force: true });
    await writeFile(tmp, `${token}\n`, { mode: 0o600, flag: 'wx' });
    await rename(tmp, this.path);
    return token;
  }
}
