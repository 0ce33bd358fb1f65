import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../errors.js';
import { formatPublication, parsePublication, parsePublicationRef, parsePublications } from './portspec.js';

test('publish specs: [ADDR:]HOST:GUEST[/proto], defaults 127.0.0.1 and tcp', () => {
  const ok: [string, string][] = [
    ['8080:80', '127.0.0.1:8080:80/tcp'],
    ['127.0.0.1:18080:8080', '127.0.0.1:18080:8080/tcp'],
    ['0.0.0.0:5353:53/udp', '0.0.0.0:5353:53/udp'],
    ['1:65535/tcp', '127.0.0.1:1:65535/tcp'],
    ['10.1.2.3:443:8443/tcp', '10.1.2.3:443:8443/tcp'],
  ];
  for (const [spec, want] of ok) assert.equal(formatPublication(parsePublication(spec)), want, spec);
});

test('bad publish specs: a bad_request naming the spec and the bad value', () => {
  const bad: [string, RegExp][] = [
    ['0:80', /"0:80".*host port "0"/],
    ['8080:65536', /guest port "65536"/],
    ['65536:80', /host port "65536"/],
    ['-1:80', /host port "-1"/],
    ['80', /invalid port spec "80"$/],
    ['a:b:c:d', /invalid port spec "a:b:c:d"$/],
    ['localhost:8080:80', /"localhost" is not an IPv4 address/],
    ['256.0.0.1:8080:80', /"256.0.0.1" is not an IPv4 address/],
    ['8080:80/sctp', /protocol "sctp" is not tcp or udp/],
    ['8080:80/', /protocol "" is not tcp or udp/],
    ['8080:80/udp/tcp', /protocol "udp\/tcp"/],
    [':80', /host port ""/],
    ['8080:8x', /guest port "8x"/],
    ['1e3:80', /host port "1e3"/],
  ];
  for (const [spec, re] of bad) {
    assert.throws(
      () => parsePublication(spec),
      (e: unknown) => e instanceof AppError && e.code === 'bad_request' && re.test(e.message),
      spec,
    );
  }
});

test('unpublish refs: the host side alone, or a full spec', () => {
  assert.deepEqual(parsePublicationRef('18080'), { address: '127.0.0.1', hostPort: 18080, protocol: 'tcp' });
  assert.deepEqual(parsePublicationRef('0.0.0.0:53/udp'), { address: '0.0.0.0', hostPort: 53, protocol: 'udp' });
  assert.deepEqual(parsePublicationRef('18080:8080'), {
    address: '127.0.0.1',
    hostPort: 18080,
    guestPort: 8080,
    protocol: 'tcp',
  });
  assert.throws(() => parsePublicationRef('1.2.3:80'), /"1.2.3" is not an IPv4 address/);
});

test('one host ADDR:PORT/proto published twice in one request is refused; tcp and udp may share a port', () => {
  assert.throws(() => parsePublications(['8080:80', '127.0.0.1:8080:81']), /127\.0\.0\.1:8080\/tcp is published twice/);
  assert.equal(parsePublications(['8080:80', '8080:80/udp']).length, 2);
});
