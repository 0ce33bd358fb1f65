import { badRequest } from '../errors.js';
import { DOCKER_HUB } from './reference.js';

/*
 * Registry authentication helpers: WWW-Authenticate parsing (RFC 7235
 * challenges as registries send them), credentials from a docker
 * config.json, and Authorization header values. No I/O here.
 */

export type Challenge =
  { scheme: 'bearer'; realm: string; service?: string; scope?: string } | { scheme: 'basic'; realm?: string };

export interface Credentials {
  username: string;
  password: string;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

interface RawChallenge {
  scheme: string;
  params: Map<string, string>;
}

/** Splits a header into challenges: scheme followed by comma-separated name=value (token or quoted-string) parameters. */
function tokenizeChallenges(header: string): RawChallenge[] {
  const out: RawChallenge[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TOKEN_CHAR.test(header[i] as string)) i++;
    return header.slice(start, i);
  };
  const readQuoted = (): string => {
    // header[i] === '"'
    i++;
    let s = '';
    while (i < n && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < n) i++;
      s += header[i];
      i++;
    }
    i++; // closing quote (or end)
    return s;
  };
  let current: RawChallenge | undefined;
  while (i < n) {
    skipWs();
    if (header[i] === ',') {
      i++;
      continue;
    }
    const tok = readToken();
    if (tok === '') {
      i++; // junk character: skip it
      continue;
    }
    skipWs();
    if (header[i] === '=' && current !== undefined) {
      // name=value parameter of the current challenge. (token68 forms such as 'Basic abc==' are not used by registries.)
      i++;
      skipWs();
      const value = header[i] === '"' ? readQuoted() : readToken();
      current.params.set(tok.toLowerCase(), value);
      continue;
    }
    if (header[i] === '=' && current === undefined) {
      // Parameter without a scheme: malformed; skip to next comma.
      while (i < n && header[i] !== ',') i++;
      continue;
    }
    current = { scheme: tok.toLowerCase(), params: new Map() };
    out.push(current);
  }
  return out;
}

/**
 * The Bearer and Basic challenges in a WWW-Authenticate header, in header
 * order; other schemes and a Bearer challenge without a realm are dropped.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  for (const c of tokenizeChallenges(header)) {
    if (c.scheme === 'bearer') {
      const realm = c.params.get('realm');
      if (realm === undefined || realm === '') continue;
      const ch: Challenge = { scheme: 'bearer', realm };
      const service = c.params.get('service');
      const scope = c.params.get('scope');
      if (service !== undefined) ch.service = service;
      if (scope !== undefined) ch.scope = scope;
      out.push(ch);
    } else if (c.scheme === 'basic') {
      const realm = c.params.get('realm');
      out.push(realm === undefined ? { scheme: 'basic' } : { scheme: 'basic', realm });
    }
  }
  return out;
}

/** The challenge to answer: Bearer if offered, else Basic, else undefined. */
export function pickChallenge(challenges: readonly Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
}

/** The pull scope for a repository, as the token service expects it. */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

/** The token endpoint URL for a Bearer challenge: realm with service and scope added to its query. Throws badRequest if the realm is not a URL. */
export function tokenUrl(challenge: Extract<Challenge, { scheme: 'bearer' }>, repository: string): URL {
  let u: URL;
  try {
    u = new URL(challenge.realm);
  } catch {
    throw badRequest(`registry sent an invalid token realm ${JSON.stringify(challenge.realm)}`);
  }
  if (challenge.service !== undefined) u.searchParams.set('service', challenge.service);
  u.searchParams.set('scope', pullScope(repository));
  return u;
}

/** The bearer token in a token-endpoint response body ('token', or the OAuth2 'access_token'), or undefined. */
export function parseTokenResponse(body: unknown): { token: string; expiresIn?: number } | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const o = body as Record<string, unknown>;
  const token =
    typeof o.token === 'string' && o.token !== ''
      ? o.token
      : typeof o.access_token === 'string' && o.access_token !== ''
        ? o.access_token
        : undefined;
  if (token === undefined) return undefined;
  return typeof o.expires_in === 'number' && o.expires_in > 0 ? { token, expiresIn: o.expires_in } : { token };
}

export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
}

export function bearerAuthorization(token: string): string {
  return `Bearer ${token}`;
}

/** Keys docker itself writes for Docker Hub, plus the short forms people write by hand. */
const DOCKER_HUB_KEYS = new Set(['index.docker.io', 'docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** An `auths` key ('https://host:5000/v1/', 'http://host', 'host:5000') reduced to a lowercased host[:port]. */
export function normalizeAuthKey(key: string): string {
  let k = key.trim().toLowerCase();
  k = k.replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  return k;
}

function keyMatches(key: string, registry: string): boolean {
  const k = normalizeAuthKey(key);
  const r = registry.toLowerCase();
  if (r === DOCKER_HUB) return DOCKER_HUB_KEYS.has(k);
  return k === r;
}

function parseConfig(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw badRequest('the docker config.json is not valid JSON', 'fix or remove ~/.docker/config.json');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badRequest('the docker config.json is not a JSON object', 'fix or remove ~/.docker/config.json');
  }
  return parsed as Record<string, unknown>;
}

function entryCredentials(entry: unknown): Credentials | undefined {
  if (typeof entry !== 'object' || entry === null) return undefined;
  const e = entry as Record<string, unknown>;
  if (typeof e.auth === 'string' && e.auth !== '') {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof e.username === 'string' && e.username !== '' && typeof e.password === 'string') {
    return { username: e.username, password: e.password };
  }
  return undefined;
}

/**
 * Credentials for a registry (host[:port], Docker Hub as 'registry-1.docker.io')
 * from docker config.json text: `auths[key].auth` (base64 'user:pass') or
 * `auths[key].username`/`password`, where key may carry a scheme and path
 * ('https://index.docker.io/v1/'). Undefined when there are none. Invalid
 * JSON is a badRequest.
 */
export function credentialsFor(dockerConfig: string, registry: string): Credentials | undefined {
  const cfg = parseConfig(dockerConfig);
  const auths = cfg.auths;
  if (typeof auths !== 'object' || auths === null) return undefined;
  // Exact key first, then normalised matches, so 'host:5000' wins over 'https://host:5000/v1/'.
  const entries = Object.entries(auths as Record<string, unknown>);
  const exact = entries.find(([k]) => k === registry);
  const ordered = exact === undefined ? entries : [exact, ...entries];
  for (const [key, entry] of ordered) {
    if (!keyMatches(key, registry)) continue;
    const creds = entryCredentials(entry);
    if (creds !== undefined) return creds;
  }
  return undefined;
}

/**
 * The docker credential helper configured for a registry ('credHelpers' entry,
 * else 'credsStore'), which banger does not run; for error hints. Undefined
 * when none is set or the config does not parse.
 */
export function credentialHelperFor(dockerConfig: string, registry: string): string | undefined {
  let cfg: Record<string, unknown>;
  try {
    cfg = parseConfig(dockerConfig);
  } catch {
    return undefined;
  }
  const helpers = cfg.credHelpers;
  if (typeof helpers === 'object' && helpers !== null) {
    for (const [key, name] of Object.entries(helpers as Record<string, unknown>)) {
      if (keyMatches(key, registry) && typeof name === 'string' && name !== '') return name;
    }
  }
  return typeof cfg.credsStore === 'string' && cfg.credsStore !== '' ? cfg.credsStore : undefined;
}
