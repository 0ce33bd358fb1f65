import { request as httpRequest } from 'node:http';
import { AppError, operationFailed } from '../../errors.js';

export type ApiMethod = 'GET' | 'PUT' | 'PATCH';

export interface ApiResponse {
  status: number;
  /** Parsed JSON body; undefined for an empty body (204), the raw text when it is not JSON. */
  json: unknown;
}

/** GET / (swagger definition InstanceInfo). */
export interface InstanceInfo {
  id: string;
  state: 'Not started' | 'Running' | 'Paused';
  vmm_version: string;
  app_name: string;
}

export interface ApiClientOptions {
  /** Per request; the error names the call. */
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
}

const DEFAULT_TIMEOUT_MS = 5000;

function faultOf(json: unknown): string | undefined {
  if (json !== null && typeof json === 'object' && 'fault_message' in json) {
    const m = (json as { fault_message: unknown }).fault_message;
    if (typeof m === 'string') return m;
  }
  return typeof json === 'string' && json !== '' ? json : undefined;
}

/** A client for firecracker's REST API, which is HTTP/1.1 over a Unix socket. One connection per request. */
export class FirecrackerApi {
  private readonly timeoutMs: number;
  private readonly signal: AbortSignal | undefined;

  constructor(
    readonly socketPath: string,
    opts: ApiClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.signal = opts.signal;
  }

  /** Sends one request; a non-2xx status becomes an operation_failed AppError naming the call and firecracker's fault_message. */
  async request(method: ApiMethod, path: string, body?: unknown): Promise<ApiResponse> {
    const res = await this.send(method, path, body);
    if (res.status < 200 || res.status > 299) {
      const fault = faultOf(res.json);
      throw operationFailed(
        `firecracker API ${method} ${path} failed with HTTP ${res.status}${fault ? `: ${fault}` : ''}`,
        {
          detail: body === undefined ? fault : `${fault ?? ''}\nrequest body: ${JSON.stringify(body)}`.trimStart(),
        },
      );
    }
    return res;
  }

  /** GET /version → firecracker_version, e.g. "1.7.0". */
  async getVersion(): Promise<string> {
    const { json } = await this.request('GET', '/version');
    const v = (json as { firecracker_version?: unknown } | undefined)?.firecracker_version;
    if (typeof v !== 'string')
      throw operationFailed(`firecracker API GET /version gave no firecracker_version: ${JSON.stringify(json)}`);
    return v;
  }

  /** GET / → the instance's id, state and version. */
  async instanceInfo(): Promise<InstanceInfo> {
    const { json } = await this.request('GET', '/');
    const i = json as Partial<InstanceInfo> | undefined;
    if (typeof i?.state !== 'string' || typeof i.id !== 'string') {
      throw operationFailed(`firecracker API GET / gave no instance information: ${JSON.stringify(json)}`);
    }
    return i as InstanceInfo;
  }

  private send(method: ApiMethod, path: string, body: unknown): Promise<ApiResponse> {
    return new Promise((resolve, reject) => {
      if (this.signal?.aborted) {
        reject(new AppError('cancelled', `cancelled: firecracker API ${method} ${path}`));
        return;
      }
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
      const headers: Record<string, string | number> = { Accept: 'application/json' };
      // Firecracker's HTTP server reads a body only by Content-Length (no chunked encoding).
      if (payload !== undefined) {
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = payload.length;
      }
      let settled = false;
      const finish = (err: Error | undefined, value?: ApiResponse): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(value as ApiResponse);
      };
      const req = httpRequest({ socketPath: this.socketPath, method, path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) =>
          finish(operationFailed(`firecracker API ${method} ${path}: ${e.message}`, { cause: e })),
        );
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = undefined;
          if (text.trim() !== '') {
            try {
              json = JSON.parse(text);
            } catch {
              json = text;
            }
          }
          finish(undefined, { status: res.statusCode ?? 0, json });
        });
      });
      const timer = setTimeout(() => {
        req.destroy();
        finish(
          operationFailed(
            `firecracker API ${method} ${path} on ${this.socketPath} timed out after ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      const onAbort = (): void => {
        req.destroy();
        finish(new AppError('cancelled', `cancelled: firecracker API ${method} ${path}`));
      };
      this.signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (e: NodeJS.ErrnoException) =>
        finish(
          operationFailed(
            `cannot reach the firecracker API at ${this.socketPath} (${method} ${path}): ${e.code ?? e.message}`,
            { cause: e },
          ),
        ),
      );
      req.end(payload);
    });
  }
}
