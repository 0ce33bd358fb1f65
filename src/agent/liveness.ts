import { formatMs, type AgentConnection } from './connection.js';

/** The hint of a connection that failed its liveness check. */
export const LIVENESS_HINT = 'what ran in the guest through this connection may be gone; the next command reconnects';

export interface Liveness {
  /** How long the agent may say nothing while sessions wait before it is asked. */
  quietMs: number;
  /** How long it then has to answer. */
  answerMs: number;
  /** True while the guest cannot answer by design (its vCPUs are stopped: pause, snapshot save). */
  held?: () => boolean;
}

export const DEFAULT_LIVENESS: Liveness = { quietMs: 15_000, answerMs: 30_000 };

/**
 * Watches a connection while sessions are open: when the agent has been quiet for
 * quietMs, `probe` (a health request) must settle within answerMs or the connection
 * is failed, which ends every session with the reason. A respawned virtio-serial agent
 * never closes the stream (it discards input until the next HELLO), so without this a
 * command whose agent died would wait forever.
 */
export function watchLiveness(
  conn: AgentConnection,
  l: Liveness,
  probe: (timeoutMs: number) => Promise<unknown>,
): void {
  let probing = false;
  const check = (): void => {
    if (l.held?.()) {
      conn.lastHeard = Date.now(); // the quiet time counts from when the guest runs again
      return;
    }
    if (probing || conn.openSessions === 0 || Date.now() - conn.lastHeard < l.quietMs) return;
    probing = true;
    const deadline = setTimeout(() => {
      if (l.held?.()) return;
      conn.destroy(
        `${conn.label} stopped answering: no reply to a liveness check within ${formatMs(l.answerMs)} (the agent restarted, or the guest hung)`,
        LIVENESS_HINT,
      );
    }, l.answerMs);
    // The probe's own timeout is later than the deadline: the deadline decides.
    probe(l.answerMs + 1000)
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(deadline);
        probing = false;
      });
  };
  const timer = setInterval(check, Math.max(1, Math.floor(l.quietMs / 3)));
  timer.unref();
  void conn.closed.then(() => clearInterval(timer));
}
