import assert from 'node:assert/strict';
import { test } from 'node:test';
import { methods } from './methods.js';
import { openApiDocument } from './openapi.js';

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
