/** The streaming-call types live with the HTTP client (api/http-client.ts), shared with the SDK. */
export type { StreamCall, StreamOptions } from '../api/http-client.js';
