import { BlockList, isIP } from 'node:net';
import { precondition } from '../errors.js';
import { isLoopbackHost } from './plain-http.js';

/*
 * The proxy settings users behind a corporate proxy already have in their
 * environment, read the way curl reads them, with one difference:
 *
 * - https:// URLs use `https_proxy`, else `HTTPS_PROXY`; http:// URLs use
 *   `http_proxy`, else `HTTP_PROXY` (the lowercase name wins when both are
 *   set; an empty value counts as unset). `ALL_PROXY` is not read.
 * - A proxy value is `http://[user:pass@]host[:port]` (port 1080 when left out, as
 *   curl does), `https://…` (TLS to the proxy, port 443 by default) or a bare
 *   `host:port` (http). Credentials are sent as Proxy-Authorization: Basic.
 * - `no_proxy`, else `NO_PROXY`: entries separated by commas or spaces,
 *   case-insensitive. `*` alone turns the proxy off for every host. A name
 *   matches itself and every name below it (`example.com` and `.example.com`
 *   and `*.example.com` all match `example.com` and `a.b.example.com`, never
 *   `badexample.com`). An IP address matches itself (IPv6 with or without
 *   brackets); `10.0.0.0/8` or `fd00::/8` match a range of addresses (not host
 *   names: no DNS lookup is made to match). An entry with `:port` matches only
 *   that port (the URL's default port when it has none).
 * - Loopback (127.0.0.0/8, ::1, localhost) is never proxied, whatever the
 *   settings: a proxy elsewhere cannot reach this host's loopback registry.
 *   (curl would proxy it unless NO_PROXY lists it; Go's net/http does not.)
 *
 * bangerd reads its own environment once at start, so the settings are
 * those of the shell that started the daemon (the CLI auto-start passes its
 * environment on); restart the daemon (`banger daemon stop`) after changing them.
 */

export interface ProxyEnv {
  readonly [name: string]: string | undefined;
}

/** The proxy settings that apply to this process, parsed once. */
export interface ProxySettings {
  http: string | undefined;
  https: string | undefined;
  noProxy: NoProxy;
}

const DEFAULT_PORT: Readonly<Record<string, number>> = { 'http:': 80, 'https:': 443 };
const PROXY_DEFAULT_PORT: Readonly<Record<string, number>> = { 'http:': 1080, 'https:': 443 };

function envValue(env: ProxyEnv, name: string): string | undefined {
  const v = env[name.toLowerCase()]?.trim();
  if (v !== undefined && v !== '') return v;
  const u = env[name.toUpperCase()]?.trim();
  return u !== undefined && u !== '' ? u : undefined;
}

/** Reads http_proxy/HTTP_PROXY, https_proxy/HTTPS_PROXY and no_proxy/NO_PROXY (lowercase first). */
export function proxySettingsFromEnv(env: ProxyEnv): ProxySettings {
  return {
    http: envValue(env, 'http_proxy'),
    https: envValue(env, 'https_proxy'),
    noProxy: parseNoProxy(envValue(env, 'no_proxy') ?? ''),
  };
}

/** No proxy settings at all (every request goes direct). */
export const NO_PROXY_SETTINGS: ProxySettings = { http: undefined, https: undefined, noProxy: parseNoProxy('') };

interface NameRule {
  kind: 'name';
  /** Lowercase, without leading '.', '*.' or trailing '.'. */
  name: string;
  port: number | undefined;
}

interface AddressRule {
  kind: 'address';
  list: BlockList;
  port: number | undefined;
}

/** A parsed NO_PROXY value. */
export interface NoProxy {
  all: boolean;
  rules: ReadonlyArray<NameRule | AddressRule>;
}

/** Splits 'host:port', '[v6]:port', bare 'v6' into host and port (undefined when absent or not a number). */
function splitHostPort(entry: string): { host: string; port: number | undefined } {
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    if (close < 0) return { host: entry, port: undefined };
    const rest = entry.slice(close + 1);
    const port = /^:\d{1,5}$/.test(rest) ? Number(rest.slice(1)) : undefined;
    return { host: entry.slice(1, close), port };
  }
  // More than one ':' without brackets is a bare IPv6 address (possibly with /prefix).
  const colons = entry.split(':').length - 1;
  if (colons === 1) {
    const [host = '', port = ''] = entry.split(':');
    return { host, port: /^\d{1,5}$/.test(port) ? Number(port) : undefined };
  }
  return { host: entry, port: undefined };
}

/** Parses a NO_PROXY value; entries that are neither names, addresses nor ranges are ignored. */
export function parseNoProxy(value: string): NoProxy {
  const rules: Array<NameRule | AddressRule> = [];
  let all = false;
  for (const raw of value.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') {
      all = true;
      continue;
    }
    const { host, port } = splitHostPort(entry);
    const slash = host.indexOf('/');
    const addr = slash < 0 ? host : host.slice(0, slash);
    const family = isIP(addr);
    if (family !== 0) {
      const list = new BlockList();
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (slash < 0) list.addAddress(addr, type);
      else {
        const prefix = Number(host.slice(slash + 1));
        if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) continue;
        list.addSubnet(addr, prefix, type);
      }
      rules.push({ kind: 'address', list, port });
      continue;
    }
    const name = host.replace(/^\*?\.+/, '').replace(/\.+$/, '');
    if (name === '' || !/^[a-z0-9_.-]+$/.test(name)) continue;
    rules.push({ kind: 'name', name, port });
  }
  return { all, rules };
}

/** The URL's hostname without IPv6 brackets or a trailing dot, lowercase. */
function bareHost(u: URL): string {
  const h = u.hostname.toLowerCase();
  return (h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h).replace(/\.+$/, '');
}

/** True when NO_PROXY says `u` goes direct. */
export function noProxyMatches(noProxy: NoProxy, u: URL): boolean {
  if (noProxy.all) return true;
  const host = bareHost(u);
  const port = u.port === '' ? DEFAULT_PORT[u.protocol] : Number(u.port);
  const family = isIP(host);
  return noProxy.rules.some((r) => {
    if (r.port !== undefined && r.port !== port) return false;
    if (r.kind === 'address') return family !== 0 && r.list.check(host, family === 4 ? 'ipv4' : 'ipv6');
    return family === 0 && (host === r.name || host.endsWith(`.${r.name}`));
  });
}

/** A proxy to connect through: its URL (http: or https:, port filled in) and the Proxy-Authorization value, if any. */
export interface ProxyTarget {
  url: URL;
  /** Host to connect to (IPv6 without brackets) and port (the URL drops a scheme-default port; this never does). */
  host: string;
  port: number;
  /** 'HTTP_PROXY' or 'HTTPS_PROXY' (either case): the setting it came from, for error messages. */
  setting: string;
  authorization: string | undefined;
}

/** `http://user:***@host:port` — a proxy URL safe to print. */
export function redactProxy(u: URL): string {
  return `${u.protocol}//${u.username === '' ? '' : `${decodeURIComponent(u.username)}:***@`}${u.host}`;
}

/** Parses a proxy setting; a value banger cannot use is a precondition naming the variable and the fix. */
export function parseProxyUrl(value: string, setting: string): ProxyTarget {
  const hint = `set ${setting} to http://HOST:PORT (or https://), or unset it`;
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw precondition(
      `${setting} is not a valid proxy URL: ${JSON.stringify(value.replace(/\/\/[^@/]*@/, '//***@'))}`,
      hint,
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw precondition(
      `${setting} uses the unsupported proxy scheme ${JSON.stringify(u.protocol.slice(0, -1))}: ${redactProxy(u)}`,
      `banger talks to http and https proxies only; ${hint}`,
    );
  }
  if (u.hostname === '') throw precondition(`${setting} names no proxy host: ${redactProxy(u)}`, hint);
  // URL parsing drops a port equal to the scheme's default, so whether one was written is read from the text.
  const written = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(?:\[[^\]/?#]*\]|[^:/?#]*):\d/i.test(text);
  const port = u.port !== '' ? Number(u.port) : written ? DEFAULT_PORT[u.protocol] : PROXY_DEFAULT_PORT[u.protocol];
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const authorization =
    u.username === ''
      ? undefined
      : `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
  return { url: u, host, port: port ?? 1080, setting, authorization };
}

/**
 * The proxy a request to `u` goes through, or undefined for a direct
 * connection: loopback and NO_PROXY matches go direct; otherwise the
 * scheme's setting, if any.
 */
export function proxyFor(settings: ProxySettings, u: URL): ProxyTarget | undefined {
  if (isLoopbackHost(u.hostname)) return undefined;
  const value = u.protocol === 'https:' ? settings.https : u.protocol === 'http:' ? settings.http : undefined;
  if (value === undefined || noProxyMatches(settings.noProxy, u)) return undefined;
  return parseProxyUrl(value, u.protocol === 'https:' ? 'HTTPS_PROXY' : 'HTTP_PROXY');
}

/** The settings for a log line, credentials hidden. */
export function proxySummary(settings: ProxySettings): Record<string, string> {
  const show = (v: string | undefined, setting: string): string => {
    if (v === undefined) return 'none';
    try {
      return redactProxy(parseProxyUrl(v, setting).url);
    } catch {
      return 'invalid';
    }
  };
  return {
    http_proxy: show(settings.http, 'HTTP_PROXY'),
    https_proxy: show(settings.https, 'HTTPS_PROXY'),
    no_proxy: settings.noProxy.all ? '*' : `${settings.noProxy.rules.length} entries`,
  };
}
