import { isIPv4 } from 'node:net';
import { badRequest } from '../errors.js';

/**
 * `api_listen` ("127.0.0.1:7681") as host and port. Only a loopback address unless
 * `allowRemote` (config `api_listen_remote = true`): the token is sent in clear text.
 */
export function parseApiListen(listen: string, allowRemote: boolean): { host: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !isIPv4(m[1] as string) || !(port >= 0 && port <= 65535))
    throw badRequest(`invalid api_listen ${JSON.stringify(listen)}: expected IPV4:PORT, e.g. 127.0.0.1:7681`);
  const host = m[1] as string;
  if (!host.startsWith('127.') && !allowRemote)
    throw badRequest(
      `api_listen ${JSON.stringify(listen)} is not a loopback address`,
      'use 127.0.0.1:<port>; to listen beyond this host (the token travels unencrypted) also set api_listen_remote = true',
    );
  return { host, port };
}
