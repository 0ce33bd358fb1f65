import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { AgentClient } from '../../agent/client.js';
import { DEFAULT_LIVENESS, LIVENESS_HINT, type Liveness } from '../../agent/liveness.js';
import { formatMs } from '../../agent/connection.js';
import type { AgentHealth, ListeningPort } from '../../agent/payloads.js';
import { AGENT_VSOCK_PORT, connectFirecrackerVsock } from '../../agent/vsock.js';
import { AppError, operationFailed } from '../../errors.js';
import type { Paths } from '../../system/paths.js';
import type { Logger } from '../context.js';

/** The first guest-assets version whose images carry banger-agent (src/guest/assets.ts v3). */
export const FIRST_AGENT_ASSETS = 3;
/** From guest assets v4 the agent's SHUTDOWN asks PID 1 for an orderly poweroff; v3 rebooted at once after sync. */
export const ORDERLY_SHUTDOWN_ASSETS = 4;
/** Guest assets whose agent lists directories (FILE_LIST). */
export const FILE_LIST_ASSETS = 9;

/** What the manager needs of a VM: its id (the socket) and name (messages). */
export interface AgentTarget {
  id: string;
  name: string;
}

/** Opens the byte stream to a VM's agent; rejects when there is nothing to connect to. */
export type AgentDialer = (vm: AgentTarget, timeoutMs: number) => Promise<Duplex>;

export interface VmAgentsDeps {
  paths: Paths;
  log: Logger;
  /** The default connects to Paths.agentSocket (qemu's virtio-serial bridge). */
  dial?: AgentDialer | undefined;
  /** Bound of the handshake and of each answer on an established connection (default 10 s). */
  timeoutMs?: number | undefined;
  /**
   * A connection nobody used for this long is closed (default 10 s): qemu's chardev
   * serves one client at a time, so an idle daemon leaves the agent to others
   * (tests, debugging); the next use reconnects.
   */
  idleMs?: number | undefined;
  /** Timing of the liveness checks (default DEFAULT_LIVENESS). */
  liveness?: Pick<Liveness, 'quietMs' | 'answerMs'> | undefined;
  /** Whether the VM is paused: its connection's liveness checks wait (default: never). */
  paused?: ((id: string) => boolean) | undefined;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_IDLE_MS = 10_000;

interface Entry {
  client: Promise<AgentClient>;
  busy: number;
  idle: NodeJS.Timeout | undefined;
}

/** Connects to the Unix socket qemu listens on for the VM's virtio-serial agent port. */
export function socketDialer(paths: Paths): AgentDialer {
  return (vm, timeoutMs) =>
    new Promise((resolve, reject) => {
      const path = paths.agentSocket(vm.id);
      const s = createConnection(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(
          operationFailed(
            `cannot connect to the agent socket ${path} of VM "${vm.name}" within ${formatMs(timeoutMs)}`,
          ),
        );
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          operationFailed(`cannot connect to the agent of VM "${vm.name}" at ${path}: ${e.code ?? e.message}`, {
            hint: `is the VM running? (\`banger vm show ${vm.name}\`)`,
          }),
        );
      });
    });
}

/** Connects to a firecracker VM's agent: its hybrid vsock socket at Paths.agentSocket, then `CONNECT <port>`. */
export function vsockDialer(paths: Paths): AgentDialer {
  return (vm, timeoutMs) => connectFirecrackerVsock(paths.agentSocket(vm.id), AGENT_VSOCK_PORT, timeoutMs);
}

/** The hint of every agent failure: where to look, and the pre-agent images. */
export function agentHint(name: string): string {
  return (
    `the guest console shows why (\`banger vm logs ${name}\`); an image made before the agent ` +
    `(guest assets older than v${FIRST_AGENT_ASSETS}, see \`banger image show\`) has none`
  );
}

/**
 * One guest-agent connection per running VM, made on first use (so VMs
 * adopted after a daemon restart reconnect by themselves), kept while in use
 * and closed after idleMs, or when the VM stops. Every wait is bounded; a
 * failure names the VM and drops the connection so the next call starts over.
 */
export class VmAgents {
  private readonly entries = new Map<string, Entry>();
  private readonly holds = new Map<string, number>();
  private readonly dial: AgentDialer;
  private readonly timeoutMs: number;
  private readonly idleMs: number;

  constructor(private readonly d: VmAgentsDeps) {
    this.dial = d.dial ?? socketDialer(d.paths);
    this.timeoutMs = d.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.idleMs = d.idleMs ?? DEFAULT_IDLE_MS;
  }

  /**
   * Holds the liveness checks of the VM's connection while its vCPUs are stopped for a
   * while (a snapshot's save); call the returned function when they run again.
   */
  hold(id: string): () => void {
    this.holds.set(id, (this.holds.get(id) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.holds.get(id) ?? 1) - 1;
      if (n > 0) this.holds.set(id, n);
      else this.holds.delete(id);
    };
  }

  private held(id: string): boolean {
    return this.holds.has(id) || (this.d.paused?.(id) ?? false);
  }

  /** Whether a connection is open or being made (tests). */
  has(id: string): boolean {
    return this.entries.has(id);
  }

  health(vm: AgentTarget): Promise<AgentHealth> {
    return this.use(vm, (c) => c.health());
  }

  ports(vm: AgentTarget): Promise<{ ports: ListeningPort[]; truncated: boolean }> {
    return this.use(vm, (c) => c.ports());
  }

  /** Asks the guest to sync and power off; resolves when the agent confirmed (the VM is still going down). */
  async shutdown(vm: AgentTarget): Promise<void> {
    await this.use(vm, (c) => c.shutdown('poweroff'));
    this.close(vm.id);
  }

  /**
   * Waits for a booting guest's agent to answer health, on a connection of its
   * own: qemu keeps the HELLO until the guest opens its port, so one handshake
   * bounded by `timeoutMs` covers the boot. Closed afterwards (the next use
   * makes a connection with the normal bounds). Rejects early when the VMM
   * exits (its socket closes) or `signal` fires.
   */
  async waitBoot(vm: AgentTarget, timeoutMs: number, signal: AbortSignal): Promise<AgentHealth> {
    const stream = await this.dialBooting(vm, Math.min(timeoutMs, this.timeoutMs), signal);
    const onAbort = (): void => {
      stream.destroy();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    let client: AgentClient | undefined;
    try {
      client = await AgentClient.connect(stream, { timeoutMs, label: `the guest agent of VM "${vm.name}"` });
      return await client.health();
    } catch (e) {
      if (signal.aborted) throw new AppError('cancelled', 'operation cancelled');
      throw this.failure(vm, e);
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (client) client.close();
      else stream.destroy();
    }
  }

  /** Dials until the VMM has made its socket (retried every 100 ms for at most `boundMs`). */
  private async dialBooting(vm: AgentTarget, boundMs: number, signal: AbortSignal): Promise<Duplex> {
    const deadline = Date.now() + boundMs;
    for (;;) {
      try {
        return await this.dial(vm, boundMs);
      } catch (e) {
        if (signal.aborted) throw new AppError('cancelled', 'operation cancelled');
        if (Date.now() >= deadline) throw this.failure(vm, e);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Runs `fn` with the VM's connection, connecting first when there is none. */
  async use<T>(vm: AgentTarget, fn: (c: AgentClient) => Promise<T>): Promise<T> {
    const entry = this.entry(vm);
    entry.busy++;
    clearTimeout(entry.idle);
    try {
      const client = await entry.client;
      return await fn(client);
    } catch (e) {
      // A timeout or a broken stream: the next call reconnects instead of queueing behind it.
      if (this.entries.get(vm.id) === entry) this.drop(vm.id, entry);
      throw this.failure(vm, e);
    } finally {
      entry.busy--;
      if (entry.busy === 0 && this.entries.get(vm.id) === entry) {
        entry.idle = setTimeout(() => {
          if (entry.busy === 0 && this.entries.get(vm.id) === entry) this.drop(vm.id, entry);
        }, this.idleMs);
        entry.idle.unref();
      }
    }
  }

  /** Closes the VM's connection (stop, delete). */
  close(id: string): void {
    const entry = this.entries.get(id);
    if (entry) this.drop(id, entry);
  }

  closeAll(): void {
    for (const [id, entry] of [...this.entries]) this.drop(id, entry);
  }

  private entry(vm: AgentTarget): Entry {
    const cur = this.entries.get(vm.id);
    if (cur) return cur;
    const client = (async () => {
      const stream = await this.dial(vm, this.timeoutMs);
      const c = await AgentClient.connect(stream, {
        timeoutMs: this.timeoutMs,
        label: `the guest agent of VM "${vm.name}"`,
        liveness: { ...(this.d.liveness ?? DEFAULT_LIVENESS), held: () => this.held(vm.id) },
      });
      this.d.log.debug('connected to the guest agent', { name: vm.name, agent: c.agent.name });
      return c;
    })();
    const entry: Entry = { client, busy: 0, idle: undefined };
    client.then(
      (c) => {
        // A connection the guest ends (poweroff, agent restart) is forgotten at once.
        void c.closed.then(() => {
          if (this.entries.get(vm.id) === entry) this.entries.delete(vm.id);
        });
      },
      () => undefined,
    );
    this.entries.set(vm.id, entry);
    return entry;
  }

  private drop(id: string, entry: Entry): void {
    clearTimeout(entry.idle);
    this.entries.delete(id);
    entry.client.then(
      (c) => c.close(),
      () => undefined,
    );
  }

  /** The failure as an AppError that names the VM, with the hint of where to look. */
  private failure(vm: AgentTarget, e: unknown): AppError {
    if (e instanceof AppError && e.code !== 'operation_failed') return e;
    const msg = e instanceof Error ? e.message : String(e);
    const named = msg.includes(`"${vm.name}"`) ? msg : `VM "${vm.name}": ${msg}`;
    const detail = e instanceof AppError ? e.detail : undefined;
    const hint =
      e instanceof AppError && e.hint === LIVENESS_HINT
        ? `${e.hint} (\`banger vm logs ${vm.name}\` shows the guest console)`
        : agentHint(vm.name);
    return operationFailed(named, { hint, cause: e, ...(detail === undefined ? {} : { detail }) });
  }
}
