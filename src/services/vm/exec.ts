import type { Readable, Writable } from 'node:stream';
import type { AgentClient } from '../../agent/client.js';
import type { AgentExec } from '../../agent/exec.js';
import { signalNumber } from '../../agent/exec.js';
import type { ExecSpec } from '../../agent/payloads.js';
import type { ExecInFrame, ExecOutFrame, ExecResult, Params, SshInfo, VmSessionInfo } from '../../api/methods.js';
import { AppError, cancelled } from '../../errors.js';
import type { ImageRepo } from '../../store/images.js';
import type { VmRepo, VmRow } from '../../store/vms.js';
import type { StreamChannel } from '../../daemon/stream.js';
import type { Logger, OpContext } from '../context.js';
import {
  applyImageConfig,
  NO_RUNTIME_CONFIG,
  readRuntimeConfig,
  resolveUser,
  type ImageRuntimeConfig,
} from '../image/oci-config.js';
import type { VmAgents } from './agent.js';
import { checkAgentVm, guestTraits } from './guestops.js';
import { resolveRef } from './names.js';

/*
 * vm.exec: a command (or the user's login shell) in a running VM through its
 * guest agent, with the image's OCI config applied, streamed to the client.
 */

export type ExecParams = Params<'vm.exec'>;

/** The guest's /etc/passwd and /etc/group are read at most this large. */
export const MAX_ACCOUNT_FILE_BYTES = 1 << 20;

export interface VmExecDeps {
  vms: Pick<VmRepo, 'byName' | 'get' | 'list'>;
  images: Pick<ImageRepo, 'get'>;
  agents: Pick<VmAgents, 'use'>;
  log: Logger;
  /** The VM's OpenSSH details (VmService.sshInfo; it refuses a VM that is not running). */
  sshInfo: (ref: string) => SshInfo;
}

/** What the exec will run, and whether its directory is only the user's home (then a missing one falls back). */
interface Planned {
  spec: ExecSpec;
  cwdIsHome: boolean;
}

/** A guest file's text, '' when it does not exist. */
export async function guestText(c: AgentClient, path: string): Promise<string> {
  try {
    return (await c.getFile(path, { maxBytes: MAX_ACCOUNT_FILE_BYTES })).data.toString('utf8');
  } catch (e) {
    if (e instanceof AppError && /\(errno 2\)/.test(e.detail ?? '')) return '';
    throw e;
  }
}

/**
 * The exec's argv, environment, directory and user: the image's config
 * (Env, WorkingDir, User) under the request's; HOME, USER, LOGNAME and SHELL
 * from the user's passwd entry under both (as a login over ssh sets them); the
 * directory is the request's, else WorkingDir, else the user's home. Without
 * argv, the user's login shell (passwd, else /bin/sh) on a terminal.
 */
export function planExec(p: ExecParams, cfg: ImageRuntimeConfig | undefined, passwd: string, group: string): Planned {
  const base = cfg ?? NO_RUNTIME_CONFIG;
  const user = p.user ?? base.user;
  const applied = applyImageConfig({ ...base, user: '' }, { ...(p.env ? { env: p.env } : {}) });
  const { uid, gid } = user === '' ? { uid: 0, gid: 0 } : resolveUser(user, passwd, group);
  const entry = passwd
    .split('\n')
    .map((l) => l.split(':'))
    .find((r) => r.length >= 7 && r[2] === String(uid));
  const home = entry?.[5] || (uid === 0 ? '/root' : '/');
  const shell = entry?.[6] || '/bin/sh';
  const name = entry?.[0] ?? (uid === 0 ? 'root' : undefined);
  const login: Record<string, string> = { HOME: home, SHELL: shell, ...(name ? { USER: name, LOGNAME: name } : {}) };
  const cwd = p.cwd ?? (base.working_dir || home);
  const tty = p.tty ?? p.argv === undefined;
  const spec: ExecSpec = {
    argv: p.argv ?? [shell, '-l'],
    env: { ...login, ...applied.env },
    cwd,
    uid,
    gid,
    ...(tty ? { pty: { rows: p.rows ?? 0, cols: p.cols ?? 0 } } : {}),
  };
  return { spec, cwdIsHome: p.cwd === undefined && base.working_dir === '' };
}

export function execResult(s: Awaited<AgentExec['exit']>): ExecResult {
  return s.kind === 'exited' ? { exit_code: s.code, signal: null } : { exit_code: null, signal: s.signal };
}

/** Writes to the command's stdin; resolves when the agent took it within its credit. */
function write(w: Writable, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (w.destroyed || w.writableEnded) return resolve();
    w.write(data, () => resolve());
  });
}

/** Commands in running VMs through their guest agent. */
export class VmExec {
  constructor(private readonly d: VmExecDeps) {}

  /** vm.ssh_info: the ssh details and whether the guest has sshd; a VM without sshd must have the agent. */
  async sessionInfo(ref: string): Promise<VmSessionInfo> {
    const vm = resolveRef(this.d.vms, ref);
    const image = this.d.images.get(vm.imageId);
    const traits = await guestTraits(image, this.d.log);
    if (traits.sshd) return { ...this.d.sshInfo(vm.id), has_sshd: true, agent: traits.agent };
    checkAgentVm(vm, image, 'a shell in a VM without sshd');
    let ssh: SshInfo;
    try {
      ssh = this.d.sshInfo(vm.id);
    } catch {
      // No ssh forward (nothing listens there anyway): the agent is the way in.
      ssh = {
        name: vm.name,
        host: '',
        port: 0,
        user: 'root',
        key: '',
        known_hosts: '',
        host_key_alias: `${vm.name}.vm`,
      };
    }
    return { ...ssh, has_sshd: false, agent: true };
  }

  async exec(p: ExecParams, ctx: OpContext, ch: StreamChannel<ExecInFrame, ExecOutFrame>): Promise<ExecResult> {
    const vm = resolveRef(this.d.vms, p.ref);
    const image = this.d.images.get(vm.imageId);
    checkAgentVm(vm, image, 'exec');
    const cfg = image ? await readRuntimeConfig(image.dir) : undefined;
    if (ctx.signal.aborted) throw cancelled();
    // Errors of this exec come back as values: `use` drops the VM's connection on a throw, which would
    // end every other session on it for a command that merely could not start.
    const r = await this.d.agents.use(vm, async (c) => {
      try {
        return { ok: await this.run(c, vm, p, cfg, ctx, ch) };
      } catch (e) {
        if (!c.isOpen) throw e;
        return { err: e };
      }
    });
    if ('err' in r) throw r.err;
    return r.ok;
  }

  private async run(
    c: AgentClient,
    vm: VmRow,
    p: ExecParams,
    cfg: ImageRuntimeConfig | undefined,
    ctx: OpContext,
    ch: StreamChannel<ExecInFrame, ExecOutFrame>,
  ): Promise<ExecResult> {
    const user = p.user ?? cfg?.user ?? '';
    const passwd = await guestText(c, '/etc/passwd');
    const group = /:\D/.test(user) ? await guestText(c, '/etc/group') : '';
    const plan = planExec(p, cfg, passwd, group);
    const start = (spec: ExecSpec): AgentExec => {
      const started = c.exec({ ...spec, stdin: 'pipe' });
      started.exit.catch(() => undefined); // a command that cannot start rejects both; `started` is awaited
      return started;
    };
    let x = start(plan.spec);
    try {
      await x.started;
    } catch (e) {
      // Like sshd, a home that does not exist is no reason to refuse: run in the agent's directory.
      if (!plan.cwdIsHome || !(e instanceof AppError) || !/: chdir /.test(e.message)) throw e;
      this.d.log.info('exec: the home directory is missing; running in /', { name: vm.name, cwd: plan.spec.cwd });
      x = start({ ...plan.spec, cwd: '' });
      await x.started;
    }
    const onAbort = (): void => x.abort();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    if (ctx.signal.aborted) x.abort();
    const stdin = x.stdin as Writable;
    stdin.on('error', () => undefined);
    void this.input(ch, x, stdin).catch(() => {
      // A bad frame is answered by the server (which cancels this exec); a lost client aborts it.
      x.abort();
    });
    const pump = async (r: Readable, key: 'stdout' | 'stderr'): Promise<void> => {
      try {
        for await (const chunk of r as AsyncIterable<Buffer>) {
          await ch.send(key === 'stdout' ? { stdout: chunk.toString('base64') } : { stderr: chunk.toString('base64') });
        }
      } catch {
        // The stream failed with the exec: its error is exit's.
      }
    };
    try {
      const [status] = await Promise.all([x.exit, pump(x.stdout, 'stdout'), pump(x.stderr, 'stderr')]);
      if (ctx.signal.aborted) throw cancelled();
      return execResult(status);
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
    }
  }

  /** The client's frames: stdin (waiting for the agent's credit), its end, window sizes, signals. */
  private async input(ch: StreamChannel<ExecInFrame, ExecOutFrame>, x: AgentExec, stdin: Writable): Promise<void> {
    for await (const f of ch.frames()) {
      if ('stdin' in f) await write(stdin, Buffer.from(f.stdin, 'base64'));
      else if ('eof' in f) stdin.end();
      else if ('resize' in f) x.resize(f.resize.rows, f.resize.cols);
      else {
        let n: number;
        try {
          n = signalNumber(f.signal as NodeJS.Signals);
        } catch {
          this.d.log.warn('exec: ignoring an unknown signal from the client', { signal: f.signal });
          continue;
        }
        x.kill(n);
      }
    }
    stdin.end(); // the client has nothing more to send
  }
}
