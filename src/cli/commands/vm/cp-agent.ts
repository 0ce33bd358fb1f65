import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { FILE_FRAME_BYTES } from '../../../api/file-contract.js';
import { badRequest, operationFailed } from '../../../errors.js';
import type { DaemonClient } from '../../client.js';

/*
 * `vm cp` for a VM whose image has no sshd: one regular file through the guest
 * agent (vm.file_put / vm.file_get), streamed, the mode kept.
 */

type Streamer = Pick<DaemonClient, 'stream'>;

/** The hint for a directory: the agent copies regular files only. */
export function dirHint(vm: string): string {
  return `copying directories needs sshd in the image; or use tar, e.g. \`tar -C DIR -cf - . | banger vm ssh ${vm} -- tar -C /dest -xf -\``;
}

/**
 * Where a get writes on the host, like cp: into an existing directory (or a
 * path ending in "/") under the guest file's name, else the path itself.
 */
export function hostTarget(dst: string, guestPath: string, dstIsDir: boolean): string {
  if (!dstIsDir && !dst.endsWith('/')) return dst;
  const name = posix.basename(guestPath);
  if (!name || name === '.' || name === '..')
    throw badRequest(
      `cannot name a host file after the guest path ${JSON.stringify(guestPath)}`,
      'give the host file name',
    );
  return join(dst, name);
}

/** Host file → guest path (an existing guest directory gets the file's name). */
export async function putViaAgent(client: Streamer, vm: string, src: string, guestPath: string): Promise<string> {
  // O_NONBLOCK: a FIFO named by mistake is refused below instead of blocking the open.
  const fh = await open(src, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw badRequest(`${src} is a directory: VM "${vm}" has no sshd`, dirHint(vm));
    if (!st.isFile()) throw badRequest(`${src} is not a regular file`);
    const call = client.stream(
      'vm.file_put',
      { ref: vm, path: guestPath, name: basename(src), mode: st.mode & 0o7777, size: st.size },
      { onFrame: () => undefined },
    );
    let settled = false;
    call.result.then(
      () => (settled = true),
      () => (settled = true),
    );
    // Exactly the size announced: a file that grows meanwhile is cut there, one that shrinks fails in the daemon.
    let left = st.size;
    const buf = Buffer.alloc(FILE_FRAME_BYTES);
    while (left > 0 && !settled) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, left), null);
      if (bytesRead === 0) break;
      left -= bytesRead;
      await call.send({ data: buf.subarray(0, bytesRead).toString('base64') });
    }
    call.end();
    return (await call.result).path;
  } finally {
    await fh.close();
  }
}

/**
 * Guest file → host path. Written to a new temporary file next to the
 * destination (O_EXCL|O_NOFOLLOW), then renamed over it: a symlink at the
 * destination is replaced, never written through. Permission bits only: the
 * guest's setuid/setgid/sticky bits are dropped.
 */
export async function getViaAgent(client: Streamer, vm: string, guestPath: string, dst: string): Promise<string> {
  const dstIsDir = await stat(dst).then(
    (s) => s.isDirectory(),
    () => false,
  );
  const target = hostTarget(dst, guestPath, dstIsDir);
  const tmp = join(dirname(target), `.${basename(target)}.banger-${randomBytes(6).toString('hex')}`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const fh = await open(tmp, flags, 0o600);
  let done = false;
  try {
    let got = 0;
    const call = client.stream(
      'vm.file_get',
      { ref: vm, path: guestPath },
      {
        onFrame: async (f) => {
          const chunk = Buffer.from(f.data, 'base64');
          got += chunk.length;
          await fh.write(chunk);
        },
      },
    );
    call.end();
    const r = await call.result;
    if (got !== r.size)
      throw operationFailed(`copying ${guestPath} from VM "${vm}": got ${got} of its ${r.size} bytes`);
    await fh.chmod(r.mode & 0o777);
    await fh.close();
    await rename(tmp, target);
    done = true;
    return target;
  } finally {
    if (!done) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
    }
  }
}
