import { createConnection, type Socket } from 'node:net';
import { operationFailed } from '../errors.js';
import { formatMs } from './connection.js';

/** The guest port banger-agent listens on under Firecracker (banger.agent=vsock:<port>). */
export const AGENT_VSOCK_PORT = 1024;
const MAX_REPLY = 64;

export type VsockReply = { done: false } | { done: true; hostPort: number; rest: Buffer };

/**
 * Parses Firecracker's answer to `CONNECT <port>\n`: `OK <host port>\n`, then
 * the guest's bytes. Throws on anything else or a line longer than 64 bytes.
 */
export function parseVsockReply(buf: Buffer): VsockReply {
  const nl = buf.indexOf(0x0a);
  if (nl < 0) {
    if (buf.length >= MAX_REPLY)
      throw operationFailed(`the vsock socket answered ${buf.length} bytes without a line end`);
    return { done: false };
  }
  const line = buf.subarray(0, nl).toString('latin1');
  const m = /^OK (\d{1,10})$/.exec(line);
  if (!m || nl >= MAX_REPLY)
    throw operationFailed(`the vsock socket answered ${JSON.stringify(line.slice(0, MAX_REPLY))} instead of OK <port>`);
  return { done: true, hostPort: Number(m[1]), rest: buf.subarray(nl + 1) };
}

/**
 * Connects to a Firecracker VM's vsock Unix socket and opens the guest port
 * (the `CONNECT <port>` handshake). The returned socket carries the agent
 * protocol from its first byte.
 */
export function connectFirecrackerVsock(udsPath: string, port = AGENT_VSOCK_PORT, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(udsPath);
    let buf = Buffer.alloc(0);
    const fail = (msg: string): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(
        operationFailed(msg, { hint: 'the guest agent may not be running yet (banger vm logs shows the console)' }),
      );
    };
    const timer = setTimeout(
      () => fail(`the vsock socket ${udsPath} did not connect to guest port ${port} within ${formatMs(timeoutMs)}`),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      let reply: VsockReply;
      try {
        reply = parseVsockReply(buf);
      } catch (e) {
        return fail(`${(e as Error).message} (${udsPath}, guest port ${port})`);
      }
      if (!reply.done) return;
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.off('error', onError);
      sock.pause();
      if (reply.rest.length) sock.unshift(reply.rest);
      resolve(sock);
    };
    const onClose = (): void => fail(`the vsock socket ${udsPath} closed: nothing listens on guest port ${port}`);
    const onError = (e: Error): void => fail(`cannot connect to the vsock socket ${udsPath}: ${e.message}`);
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.on('error', onError);
    sock.once('connect', () => sock.write(`CONNECT ${port}\n`));
  });
}
