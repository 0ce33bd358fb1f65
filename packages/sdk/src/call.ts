import { BangerError, BangerTimeoutError } from './errors.js';
import type { Transport } from './transport.js';

/** One request with the caller's AbortSignal and the client's requestTimeout, whose expiry is a named error. */
export async function call(
  t: Transport,
  method: string,
  params: unknown,
  opts: { signal?: AbortSignal | undefined; requestTimeout?: number | undefined },
): Promise<unknown> {
  const { signal, requestTimeout } = opts;
  if (signal?.aborted) throw signal.reason;
  const timer = requestTimeout === undefined ? undefined : AbortSignal.timeout(requestTimeout);
  const signals = [signal, timer].filter((s): s is AbortSignal => s !== undefined);
  const combined = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
  try {
    return await t.call(method, params, { signal: combined });
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    if (timer?.aborted)
      throw new BangerTimeoutError('requestTimeout', `${method} got no answer within ${requestTimeout} ms`);
    if (e instanceof BangerError) throw e;
    throw e;
  }
}
