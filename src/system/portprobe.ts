import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/**
 * Whether ADDR:PORT can be bound for `protocol` right now: binds it and lets
 * go at once. Undefined when free, else why not (EADDRINUSE, EADDRNOTAVAIL,
 * EACCES…). Someone may take it a moment later; the caller's real bind says so.
 */
export function probeBind(address: string, port: number, protocol: 'tcp' | 'udp'): Promise<string | undefined> {
  return new Promise((resolve) => {
    const why = (e: NodeJS.ErrnoException): string => e.code ?? e.message;
    if (protocol === 'tcp') {
      const srv = createServer();
      srv.once('error', (e: NodeJS.ErrnoException) => resolve(why(e)));
      srv.listen({ host: address, port, exclusive: true }, () => srv.close(() => resolve(undefined)));
    } else {
      const sock = createSocket({ type: 'udp4' });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        sock.close();
        resolve(why(e));
      });
      sock.bind({ address, port, exclusive: true }, () => sock.close(() => resolve(undefined)));
    }
  });
}
