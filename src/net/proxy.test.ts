import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../errors.js';
import { noProxyMatches, parseNoProxy, parseProxyUrl, proxyFor, proxySettingsFromEnv, type ProxyEnv } from './proxy.js';

const noProxyCases: { noProxy: string; url: string; direct: boolean }[] = [
  // empty / wildcard
  { noProxy: '', url: 'https://example.com/', direct: false },
  { noProxy: '*', url: 'https://example.com/', direct: true },
  { noProxy: '*', url: 'http://10.1.2.3:8080/', direct: true },
  { noProxy: 'other.org, *', url: 'https://example.com/', direct: true },
  // names: the name itself and every name below it, never a mere string suffix
  { noProxy: 'example.com', url: 'https://example.com/x', direct: true },
  { noProxy: 'example.com', url: 'https://a.b.example.com/x', direct: true },
  { noProxy: 'example.com', url: 'https://badexample.com/x', direct: false },
  { noProxy: 'example.com', url: 'https://example.com.evil.org/x', direct: false },
  { noProxy: '.example.com', url: 'https://example.com/', direct: true },
  { noProxy: '.example.com', url: 'https://www.example.com/', direct: true },
  { noProxy: '*.example.com', url: 'https://www.example.com/', direct: true },
  { noProxy: '*.example.com', url: 'https://example.com/', direct: true },
  { noProxy: 'EXAMPLE.COM', url: 'https://www.Example.com/', direct: true },
  { noProxy: 'example.com.', url: 'https://example.com./', direct: true },
  { noProxy: 'internal', url: 'https://registry.internal/', direct: true },
  // separators: commas, spaces, both
  { noProxy: 'a.org,b.org', url: 'https://b.org/', direct: true },
  { noProxy: 'a.org b.org', url: 'https://b.org/', direct: true },
  { noProxy: ' a.org , ,b.org ', url: 'https://b.org/', direct: true },
  { noProxy: 'a.org,b.org', url: 'https://c.org/', direct: false },
  // ports: an entry with a port matches only that port (the default port when the URL has none)
  { noProxy: 'example.com:8443', url: 'https://example.com:8443/', direct: true },
  { noProxy: 'example.com:8443', url: 'https://example.com/', direct: false },
  { noProxy: 'example.com:443', url: 'https://example.com/', direct: true },
  { noProxy: 'example.com:80', url: 'https://example.com/', direct: false },
  { noProxy: 'example.com:80', url: 'http://www.example.com/', direct: true },
  { noProxy: '10.0.0.5:5000', url: 'http://10.0.0.5:5000/', direct: true },
  { noProxy: '10.0.0.5:5000', url: 'http://10.0.0.5:5001/', direct: false },
  // addresses and ranges (no DNS: a name never matches an address entry)
  { noProxy: '10.0.0.5', url: 'https://10.0.0.5/', direct: true },
  { noProxy: '10.0.0.5', url: 'https://10.0.0.50/', direct: false },
  { noProxy: '10.0.0.0/8', url: 'https://10.200.3.4/', direct: true },
  { noProxy: '10.0.0.0/8', url: 'https://11.0.0.1/', direct: false },
  { noProxy: '192.168.1.0/24', url: 'https://192.168.1.77:9000/', direct: true },
  { noProxy: '10.0.0.0/8', url: 'https://ten.example/', direct: false },
  { noProxy: 'fd00::/8', url: 'https://[fd12::1]/', direct: true },
  { noProxy: '::1', url: 'https://[::2]/', direct: false },
  { noProxy: '[fd00::1]', url: 'https://[fd00::1]/', direct: true },
  { noProxy: '[fd00::1]:5000', url: 'https://[fd00::1]:5000/', direct: true },
  { noProxy: '[fd00::1]:5000', url: 'https://[fd00::1]/', direct: false },
  { noProxy: 'fd00::1', url: 'https://[fd00:0::1]/', direct: true },
  // entries that are not hosts are ignored
  { noProxy: '10.0.0.0/99, http://x.org/, a b', url: 'https://x.org/', direct: false },
];

for (const c of noProxyCases) {
  test(`NO_PROXY=${JSON.stringify(c.noProxy)} ${c.url} → ${c.direct ? 'direct' : 'proxy'}`, () => {
    assert.equal(noProxyMatches(parseNoProxy(c.noProxy), new URL(c.url)), c.direct);
  });
}

const P = 'http://proxy.corp:3128';

const envCases: { name: string; env: ProxyEnv; url: string; proxy: string | undefined }[] = [
  { name: 'nothing set', env: {}, url: 'https://example.com/', proxy: undefined },
  { name: 'HTTPS_PROXY for https', env: { HTTPS_PROXY: P }, url: 'https://example.com/', proxy: P },
  { name: 'https_proxy for https', env: { https_proxy: P }, url: 'https://example.com/', proxy: P },
  { name: 'HTTPS_PROXY not for http', env: { HTTPS_PROXY: P }, url: 'http://example.com/', proxy: undefined },
  { name: 'HTTP_PROXY for http', env: { HTTP_PROXY: P }, url: 'http://example.com/', proxy: P },
  { name: 'http_proxy for http', env: { http_proxy: P }, url: 'http://example.com/', proxy: P },
  { name: 'HTTP_PROXY not for https', env: { HTTP_PROXY: P }, url: 'https://example.com/', proxy: undefined },
  {
    name: 'lowercase wins',
    env: { https_proxy: 'http://low:1', HTTPS_PROXY: 'http://up:2' },
    url: 'https://example.com/',
    proxy: 'http://low:1',
  },
  {
    name: 'empty lowercase counts as unset',
    env: { https_proxy: '', HTTPS_PROXY: 'http://up:2' },
    url: 'https://example.com/',
    proxy: 'http://up:2',
  },
  { name: 'ALL_PROXY is not read', env: { ALL_PROXY: P, all_proxy: P }, url: 'https://example.com/', proxy: undefined },
  { name: 'NO_PROXY', env: { HTTPS_PROXY: P, NO_PROXY: 'example.com' }, url: 'https://example.com/', proxy: undefined },
  { name: 'no_proxy', env: { HTTPS_PROXY: P, no_proxy: 'example.com' }, url: 'https://example.com/', proxy: undefined },
  {
    name: 'no_proxy wins over NO_PROXY',
    env: { HTTPS_PROXY: P, no_proxy: 'other.org', NO_PROXY: 'example.com' },
    url: 'https://example.com/',
    proxy: P,
  },
  { name: 'loopback 127.0.0.1 never', env: { HTTP_PROXY: P }, url: 'http://127.0.0.1:5000/', proxy: undefined },
  { name: 'loopback 127.9.9.9 never', env: { HTTPS_PROXY: P }, url: 'https://127.9.9.9/', proxy: undefined },
  { name: 'loopback localhost never', env: { HTTP_PROXY: P }, url: 'http://localhost:5000/', proxy: undefined },
  { name: 'loopback [::1] never', env: { HTTP_PROXY: P }, url: 'http://[::1]:5000/', proxy: undefined },
  { name: 'bare host:port is http', env: { HTTPS_PROXY: 'proxy.corp:3128' }, url: 'https://a.org/', proxy: P },
  {
    name: 'default proxy port 1080',
    env: { HTTPS_PROXY: 'http://proxy.corp' },
    url: 'https://a.org/',
    proxy: 'http://proxy.corp:1080',
  },
  {
    name: 'explicit :80 kept',
    env: { HTTPS_PROXY: 'http://proxy.corp:80' },
    url: 'https://a.org/',
    proxy: 'http://proxy.corp:80',
  },
  {
    name: 'https proxy, port 443',
    env: { HTTPS_PROXY: 'https://proxy.corp' },
    url: 'https://a.org/',
    proxy: 'https://proxy.corp:443',
  },
  {
    name: 'IPv6 proxy',
    env: { HTTPS_PROXY: 'http://[fd00::3]:3128' },
    url: 'https://a.org/',
    proxy: 'http://[fd00::3]:3128',
  },
];

for (const c of envCases) {
  test(`proxyFor: ${c.name}`, () => {
    const got = proxyFor(proxySettingsFromEnv(c.env), new URL(c.url));
    assert.equal(got === undefined ? undefined : `${got.url.protocol}//${got.url.hostname}:${got.port}`, c.proxy);
  });
}

test('proxy credentials become Proxy-Authorization and never appear in errors', () => {
  const t = parseProxyUrl('http://alice:p%40ss@proxy.corp:3128', 'HTTPS_PROXY');
  assert.equal(t.authorization, `Basic ${Buffer.from('alice:p@ss').toString('base64')}`);
  assert.throws(
    () => parseProxyUrl('socks5://alice:secret@proxy.corp:1080', 'HTTPS_PROXY'),
    (e: unknown) =>
      e instanceof AppError &&
      e.code === 'precondition' &&
      /HTTPS_PROXY uses the unsupported proxy scheme "socks5"/.test(e.message) &&
      !e.message.includes('secret') &&
      (e.hint ?? '').includes('HTTPS_PROXY'),
  );
  assert.throws(
    () => parseProxyUrl('http://alice:secret@[bad', 'HTTP_PROXY'),
    (e: unknown) =>
      e instanceof AppError && /HTTP_PROXY is not a valid proxy URL/.test(e.message) && !e.message.includes('secret'),
  );
});
