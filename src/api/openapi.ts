import { z } from 'zod';
import { ERROR_CODES } from '../errors.js';
import { methods, type AnyMethod } from './methods.js';
import {
  API_PREFIX,
  FRAMES_CONTENT_TYPE,
  HEADER_OP_ID,
  HEADER_VERSION,
  HEADER_PROC_ID,
  HTTP_STATUS,
  PTY_UPGRADE,
  STREAM_UPGRADE,
} from './protocol.js';
import { BINARY_FRAMES_CONTENT_TYPE, FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD } from './binframes.js';

/*
 * The OpenAPI 3.1 document of the daemon's HTTP API (docs/http-api.md), generated from the
 * contract (api/methods.ts): one `POST /v1/<method>` per method, its request body the JSON
 * Schema of the method's params as a client sends them. Results are typed in TypeScript only
 * (api/views.ts), so a result frame's `result` is left open here.
 */

type Json = Record<string, unknown>;

/** The `format` values JSON Schema 2020-12 and OpenAPI 3.1 define; the rest are zod's own names. */
export const STANDARD_FORMATS: readonly string[] = [
  ...['date-time', 'date', 'time', 'duration', 'email', 'idn-email', 'hostname', 'idn-hostname', 'ipv4', 'ipv6'],
  ...['uri', 'uri-reference', 'iri', 'iri-reference', 'uuid', 'uri-template', 'json-pointer'],
  ...['relative-json-pointer', 'regex', 'int32', 'int64', 'float', 'double', 'password'],
];

/**
 * Drops the formats zod invents (`starts_with`, `base64`, …): validators reject or ignore them, and
 * what they mean is already in `pattern` / `contentEncoding` beside them. Pure; returns a copy.
 */
export function standardFormats(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(standardFormats);
  if (typeof v !== 'object' || v === null) return v;
  const out: Json = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'format' && typeof x === 'string' && !STANDARD_FORMATS.includes(x)) continue;
    out[k] = standardFormats(x);
  }
  return out;
}

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect), as a client writes it. */
function jsonSchema(schema: z.ZodType): Json {
  const out = standardFormats(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' })) as Json;
  delete out.$schema;
  return out;
}

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

const components: Json = {
  schemas: {
    ProgressEvent: {
      type: 'object',
      required: ['stage', 'message'],
      properties: {
        stage: { type: 'string' },
        message: { type: 'string' },
        current: { type: 'number' },
        total: { type: 'number' },
      },
    },
    Error: {
      type: 'object',
      required: ['code', 'message', 'op_id'],
      properties: {
        code: { type: 'string', enum: [...ERROR_CODES] },
        message: { type: 'string' },
        hint: { type: 'string' },
        detail: { type: 'string' },
        op_id: { type: 'string' },
      },
    },
    Frame: {
      description: 'One line of a response body: any number of events, then one result or error.',
      oneOf: [
        { type: 'object', required: ['event'], properties: { event: ref('ProgressEvent') } },
        { type: 'object', required: ['result', 'op_id'], properties: { result: {}, op_id: { type: 'string' } } },
        { type: 'object', required: ['error'], properties: { error: ref('Error') } },
      ],
    },
  },
  parameters: {
    Version: {
      name: HEADER_VERSION,
      in: 'header',
      required: true,
      description: "The client's banger version; a daemon of another version answers bad_version (409).",
      schema: { type: 'string' },
    },
    OpId: {
      name: HEADER_OP_ID,
      in: 'header',
      required: false,
      description: "An op id of the client's choosing (4–64 of A-Z a-z 0-9 -); else the daemon picks one.",
      schema: { type: 'string', pattern: '^[A-Za-z0-9-]{4,64}$' },
    },
  },
  securitySchemes: {
    bearer: {
      type: 'http',
      scheme: 'bearer',
      description: 'Required on the TCP listener (api_listen) only; `banger api token` prints it.',
    },
  },
};

const frames = (description: string): Json => ({
  description,
  content: { [FRAMES_CONTENT_TYPE]: { schema: ref('Frame') } },
});

function errorResponses(): Json {
  const out: Json = {};
  for (const status of new Set(Object.values(HTTP_STATUS)))
    out[String(status)] = frames('The operation failed before any progress event: one error frame.');
  out['401'] = frames('TCP listener only: a missing or wrong bearer token.');
  out['403'] = frames('The request carried an Origin header.');
  out['413'] = frames('The request body is over 1 MiB.');
  return out;
}

function operation(name: string, def: AnyMethod): Json {
  const op: Json = {
    operationId: name,
    summary: name,
    parameters: [ref('Version').$ref, ref('OpId').$ref].map((r) => ({
      $ref: String(r).replace('/schemas/', '/parameters/'),
    })),
    security: [{}, { bearer: [] }],
  };
  if (def.kind === 'stream' && def.frames) {
    op.description =
      `A streaming method: send it with "Connection: Upgrade" and "Upgrade: ${STREAM_UPGRADE}" and no body. ` +
      'After 101 the client sends its params as one JSON line, then {"frame": …} lines (x-banger-frame) and {"end": true}; ' +
      'the daemon sends {"frame": …} and {"event": …} lines, then one result or error line.';
    op['x-banger-stream'] = true;
    op['x-banger-params'] = jsonSchema(def.params);
    op['x-banger-frame'] = jsonSchema(def.frames);
    op.responses = { '101': { description: 'Switching to the frame stream.' }, ...errorResponses() };
  } else if (def.kind === 'framed') {
    op.description =
      `Answers 200 with a chunked body of binary frames (${BINARY_FRAMES_CONTENT_TYPE}), not JSON lines: ` +
      `each frame is a ${FRAME_HEADER_BYTES}-byte header (byte 0 kind: 1 data, 2 evicted, 3 exit, 4 error; byte 1 stream: ` +
      '1 stdout, 2 stderr, 0 for exit and error; bytes 2-3 zero; bytes 4-7 payload length, big-endian, at most ' +
      `${MAX_FRAME_PAYLOAD}; bytes 8-15 the stream offset, big-endian) and its payload: data bytes raw; evicted: ` +
      'the bytes lost (8 bytes, big-endian; the offset is the oldest kept byte, where data resumes); exit: the status as ' +
      'JSON, the last frame; error: an Error as JSON, the last frame. Closing the connection detaches: the process runs on. ' +
      'A request refused before the first frame is answered as any other method (an error frame line).';
    op.requestBody = { required: false, content: { 'application/json': { schema: jsonSchema(def.params) } } };
    op.responses = {
      '200': {
        description: 'Binary frames (see the description), from the offsets asked, then live until the exit frame.',
        content: {
          [BINARY_FRAMES_CONTENT_TYPE]: { schema: { type: 'string', contentMediaType: BINARY_FRAMES_CONTENT_TYPE } },
        },
      },
      ...errorResponses(),
    };
  } else if (def.kind === 'pty') {
    op.description =
      `Send it with "Connection: Upgrade", "Upgrade: ${PTY_UPGRADE}" and the params as a JSON body (Content-Length). ` +
      `After 101 (its ${HEADER_PROC_ID} header names the process) the connection carries raw terminal bytes: the ` +
      "client's go to the terminal, the terminal's output comes back; the daemon closes it once the process ended " +
      'and its output is out. Window size: proc.resize; exit status: proc.wait. Closing the connection detaches ' +
      '(the process runs on; attach again with {id, offset}).';
    op.requestBody = { required: true, content: { 'application/json': { schema: jsonSchema(def.params) } } };
    op.responses = { '101': { description: 'Switching to raw terminal bytes.' }, ...errorResponses() };
  } else {
    op.requestBody = { required: false, content: { 'application/json': { schema: jsonSchema(def.params) } } };
    op.responses = {
      '200': frames('Progress events (as they happen), then one result or error frame.'),
      ...errorResponses(),
    };
  }
  return op;
}

/** The document; `version` is the daemon's. */
export function openApiDocument(version: string): Json {
  const paths: Json = {};
  for (const [name, def] of Object.entries(methods) as [string, AnyMethod][])
    paths[`${API_PREFIX}${name}`] = { post: operation(name, def) };
  paths[`${API_PREFIX}openapi.json`] = {
    get: {
      operationId: 'openapi',
      summary: 'This document',
      security: [{}, { bearer: [] }],
      responses: { '200': { description: 'The OpenAPI document.', content: { 'application/json': { schema: {} } } } },
    },
  };
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'banger daemon API',
      version,
      description:
        'HTTP/1.1 on the daemon socket (and on the optional TCP listener api_listen, with a bearer token). See docs/http-api.md.',
    },
    servers: [{ url: 'http://localhost' }],
    paths,
    components,
  };
}
