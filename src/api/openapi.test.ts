import assert from 'node:assert/strict';
import { test } from 'node:test';
import { methods } from './methods.js';
import { openApiDocument, STANDARD_FORMATS, standardFormats } from './openapi.js';

type Obj = Record<string, unknown>;
const obj = (v: unknown, what: string): Obj => {
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `${what} is an object`);
  return v as Obj;
};

/** Every `$ref` in the document, with where it is. */
function refs(v: unknown, at: string, out: [string, string][] = []): [string, string][] {
  if (Array.isArray(v)) v.forEach((x, i) => refs(x, `${at}[${i}]`, out));
  else if (typeof v === 'object' && v !== null)
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref' && typeof x === 'string') out.push([at, x]);
      else refs(x, `${at}.${k}`, out);
    }
  return out;
}

test('the OpenAPI document covers every method of the contract, once, and nothing else', () => {
  const doc = openApiDocument('1.2.3');
  const paths = obj(doc.paths, 'paths');
  const names = Object.keys(methods).sort();
  const documented = Object.keys(paths)
    .filter((p) => p !== '/v1/openapi.json')
    .map((p) => p.replace(/^\/v1\//, ''))
    .sort();
  assert.deepEqual(documented, names);
  for (const m of ['proc.stream', 'proc.pty', 'proc.resize']) assert.ok(names.includes(m), m);
  const ids = Object.values(paths).flatMap((p) => Object.values(obj(p, 'path')).map((op) => obj(op, 'op').operationId));
  assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
});

test('the OpenAPI document is structurally valid 3.1: info, operations, responses, schemas, resolvable refs', () => {
  const doc = openApiDocument('1.2.3');
  assert.equal(doc.openapi, '3.1.0');
  const info = obj(doc.info, 'info');
  assert.equal(typeof info.title, 'string');
  assert.equal(info.version, '1.2.3');
  for (const [path, item] of Object.entries(obj(doc.paths, 'paths'))) {
    assert.match(path, /^\/v1\/[a-z_.]+$/);
    for (const [verb, op] of Object.entries(obj(item, path))) {
      assert.ok(['get', 'post'].includes(verb), `${path}: ${verb}`);
      const o = obj(op, `${path} ${verb}`);
      assert.equal(typeof o.operationId, 'string');
      const responses = obj(o.responses, `${path} responses`);
      assert.ok(Object.keys(responses).length > 0);
      for (const [status, r] of Object.entries(responses)) {
        assert.match(status, /^[1-5]\d\d$/, `${path}: status ${status}`);
        assert.equal(typeof obj(r, `${path} ${status}`).description, 'string', `${path} ${status} has a description`);
      }
      const name = path.slice('/v1/'.length);
      if (verb !== 'post') continue;
      const def = (methods as Record<string, { kind: string }>)[name];
      if (def?.kind === 'stream') {
        assert.ok(responses['101'], `${name}: a stream answers 101`);
        assert.equal(obj(o['x-banger-params'], `${name} params`).type, 'object');
        assert.ok(o['x-banger-frame'], `${name}: its frame schema`);
      } else {
        if (def?.kind === 'framed') {
          const ok = obj(obj(responses['200'], `${name} 200`).content, `${name} content`);
          assert.deepEqual(Object.keys(ok), ['application/vnd.banger.frames'], `${name}: binary frames`);
          assert.match(String(o.description), /16-byte header/);
        }
        if (def?.kind === 'pty') {
          assert.ok(responses['101'], `${name}: a pty answers 101`);
          assert.match(String(o.description), /Upgrade: banger-pty/);
        }
        const schema = obj(
          obj(obj(obj(o.requestBody, `${name} body`).content, 'content')['application/json'], 'json').schema,
          `${name} schema`,
        );
        // A union of object shapes (proc.write: data or eof) is anyOf objects: still an object body.
        const shapes = Array.isArray(schema.anyOf) ? (schema.anyOf as Record<string, unknown>[]) : [schema];
        assert.ok(shapes.length > 0 && shapes.every((s) => s.type === 'object'), `${name}: params are an object`);
        assert.equal(schema.$schema, undefined, 'no per-schema dialect (jsonSchemaDialect says it)');
      }
    }
  }
  // Every reference points into components.
  for (const [at, ref] of refs(doc, '#')) {
    const m = /^#\/components\/(schemas|parameters|securitySchemes)\/(\w+)$/.exec(ref);
    assert.ok(m, `${at}: ${ref}`);
    assert.ok(obj(obj(doc.components, 'components')[m[1] as string], m[1] as string)[m[2] as string], `${at}: ${ref}`);
  }
  // A strict params object says so: unknown fields are refused by the daemon.
  const vmShow = obj(obj(doc.paths, 'paths')['/v1/vm.show'], 'vm.show');
  const body = JSON.stringify(vmShow);
  assert.match(body, /"additionalProperties":false/);
  assert.match(body, /"required":\["ref"\]/);
});

test('the OpenAPI document validates against the OpenAPI 3.1 schema (@seriousme/openapi-schema-validator)', async () => {
  const { Validator } = await import('@seriousme/openapi-schema-validator');
  const validator = new Validator();
  const doc = JSON.parse(JSON.stringify(openApiDocument('1.2.3'))) as Obj;
  const r = await validator.validate(doc);
  assert.deepEqual(r.errors ?? [], [], 'no validation errors');
  assert.equal(r.valid, true);
  assert.equal(validator.version, '3.1');
  // The validator does catch a broken document (so the check above can fail).
  const broken = JSON.parse(JSON.stringify(doc)) as Obj;
  (obj(obj(broken.paths, 'paths')['/v1/vm.list'], 'vm.list').post as Obj).responses = { ok: {} };
  assert.equal((await new Validator().validate(broken)).valid, false);
});

/** Ajv for JSON Schema 2020-12, strict: unknown keywords and formats are errors. */
async function strictAjv(): Promise<{ compile(s: unknown): ((d: unknown) => boolean) & { errors?: unknown } }> {
  const { Ajv2020 } = await import('ajv/dist/2020.js');
  const formats = Object.fromEntries(STANDARD_FORMATS.map((f) => [f, true as const]));
  return new Ajv2020({ strict: true, allowUnionTypes: true, formats }) as never;
}

test('every schema in the document compiles in strict JSON Schema 2020-12, with standard formats only', async () => {
  const ajv = await strictAjv();
  const doc = openApiDocument('1.2.3');
  let n = 0;
  for (const [path, item] of Object.entries(obj(doc.paths, 'paths')))
    for (const op of Object.values(obj(item, path))) {
      const o = obj(op, path);
      const body = (o.requestBody as { content?: Record<string, { schema?: unknown }> } | undefined)?.content?.[
        'application/json'
      ]?.schema;
      for (const [what, s] of [
        ['body', body],
        ['params', o['x-banger-params']],
        ['frame', o['x-banger-frame']],
      ] as const) {
        if (s === undefined) continue;
        assert.doesNotThrow(() => ajv.compile(s), `${path} ${what}`);
        n++;
      }
    }
  assert.ok(n >= Object.keys(methods).length, `${n} schemas compiled`);
  // zod's own format names are gone; the pattern beside them carries the rule.
  assert.deepEqual(standardFormats({ type: 'string', format: 'starts_with', pattern: '^/' }), {
    type: 'string',
    pattern: '^/',
  });
  assert.throws(() => ajv.compile({ type: 'string', format: 'starts_with' }), /unknown format/);
});

test('request schemas in the document accept and refuse what the contract does', async () => {
  const ajv = await strictAjv();
  const doc = openApiDocument('1.2.3');
  const bodySchema = (name: string): unknown =>
    (
      obj(obj(obj(doc.paths, 'paths')[`/v1/${name}`], name).post, name).requestBody as {
        content: Record<string, { schema: unknown }>;
      }
    ).content['application/json']?.schema;
  const cases: [string, unknown, boolean][] = [
    ['fs.list', { ref: 'dev', path: '/root' }, true],
    ['fs.list', { ref: 'dev', path: 'root' }, false],
    ['fs.list', { ref: 'dev', path: '/root', max_entries: 0 }, false],
    ['fs.list', { ref: 'dev', path: '/root', extra: 1 }, false],
    ['fs.write', { ref: 'dev', path: '/a', data: 'aGk=' }, true],
    ['fs.write', { ref: 'dev', path: '/a', data: 'not base64!' }, false],
    ['vm.create', { name: 'x', memory: '2G' }, true],
    ['vm.create', { name: 'x', memory: 2048 }, true],
    ['vm.list', {}, true],
  ];
  for (const [name, params, ok] of cases) {
    const check = ajv.compile(bodySchema(name));
    assert.equal(check(params), ok, `${name} ${JSON.stringify(params)}: JSON Schema`);
    const zod = (methods as unknown as Record<string, { params: { safeParse(v: unknown): { success: boolean } } }>)[
      name
    ];
    assert.equal(zod?.params.safeParse(params).success, ok, `${name} ${JSON.stringify(params)}: zod`);
  }
});
