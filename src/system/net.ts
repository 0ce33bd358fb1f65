import { createConnection, createServer } from 'node:net';

/** A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if it is taken by then). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Connects and waits for an SSH identification line. qemu's user-mode
 * forwarding accepts connections before the guest listens, so a connect alone
 * proves nothing; the banner does.
 */
export function readSshBanner(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    let buf = '';
    const finish = (v: string | undefined): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const line = buf.split('\n').find((l) => l.startsWith('SSH-'));
      if (line) finish(line.trim());
    });
    sock.on('error', () => finish(undefined));
    sock.on('close', () => finish(undefined));
  });
}
