import { isIP } from 'node:net';
import { badRequest, type AppError } from '../errors.js';

/*
 * The plain-http policy shared by downloads (net/download.ts) and the registry
 * client (imagepull/registry.ts): http only for loopback hosts and for the
 * host:port pairs listed in insecure_registries; https everywhere else.
 */

/** 127.0.0.0/8, [::1] and localhost, as the WHATWG URL parser spells a URL's hostname. */
export function isLoopbackHost(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  // WHATWG URL parsing already normalised shorthand IPv4 forms (127.1, 0x7f.1, ...) to dotted quads.
  return isIP(hostname) === 4 && hostname.startsWith('127.');
}

const DEFAULT_PORT: Readonly<Record<string, string>> = { 'http:': '80', 'https:': '443' };

/** 'host:port' of a URL with the scheme's default port filled in; hostname as the URL parser normalised it. */
export function hostPort(u: URL): string {
  return `${u.hostname}:${u.port === '' ? (DEFAULT_PORT[u.protocol] ?? '') : u.port}`;
}

/** A policy entry in the same normal form as hostPort(), or undefined if it is not host:port. */
function normalizeHostPort(entry: string): string | undefined {
  try {
    const u = new URL(`http://${entry}/`);
    if (u.username !== '' || u.password !== '' || u.pathname !== '/' || u.host === '') return undefined;
    return hostPort(u);
  } catch {
    return undefined;
  }
}

/** insecure_registries entries (host:port) in hostPort() form; entries that are not host:port are dropped. */
export function insecureHostSet(entries: readonly string[]): ReadonlySet<string> {
  return new Set(entries.map(normalizeHostPort).filter((h): h is string => h !== undefined));
}

/** True when plain http to `u` is allowed: a loopback host, or its host:port is in `insecureHosts` (from insecureHostSet()). */
export function plainHttpAllowed(u: URL, insecureHosts: ReadonlySet<string>): boolean {
  return isLoopbackHost(u.hostname) || insecureHosts.has(hostPort(u));
}

/**
 * The badRequest for an http URL that plainHttpAllowed() refused: `message`
 * says what was refused; the hint (after `hintPrefix`) names the policy and
 * the insecure_registries entry that would allow it.
 */
export function plainHttpRefused(message: string, u: URL, hintPrefix = ''): AppError {
  return badRequest(
    message,
    `${hintPrefix}plain http is allowed only for loopback and for hosts listed in insecure_registries (e.g. "${hostPort(u)}")`,
  );
}
