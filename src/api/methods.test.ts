import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../errors.js';
import { methods } from './methods.js';

const GIB = 2 ** 30;

test('vm.create and vm.set: memory and disk_size are parsed once, into memory_mib and disk_bytes', () => {
  const cases: [unknown, Record<string, unknown>][] = [
    [{ memory: '2G' }, { memory_mib: 2048 }],
    [{ memory: 2048 }, { memory_mib: 2048 }],
    [{ memory: '512M' }, { memory_mib: 512 }],
    [{ memory: '1536' }, { memory_mib: 1536 }],
    [{ disk_size: '8G' }, { disk_bytes: 8 * GIB }],
    [{ disk_size: 1024 }, { disk_bytes: GIB }],
    [
      { disk_size: '1.5G', memory: '1g', vcpu: 2 },
      { disk_bytes: 1.5 * GIB, memory_mib: 1024, vcpu: 2 },
    ],
    [{}, {}],
  ];
  for (const [wire, parsed] of cases) {
    assert.deepEqual(methods['vm.create'].params.parse(wire), parsed, JSON.stringify(wire));
    assert.deepEqual(methods['vm.set'].params.parse({ ref: 'dev', ...(wire as object) }), { ref: 'dev', ...parsed });
  }
});

test('image.pull and image.build: size is parsed into size_bytes', () => {
  assert.deepEqual(methods['image.pull'].params.parse({ ref: 'r', size: '4G' }), { ref: 'r', size_bytes: 4 * GIB });
  assert.deepEqual(methods['image.build'].params.parse({ name: 'n', size: 2048 }), { name: 'n', size_bytes: 2 * GIB });
  assert.deepEqual(methods['image.build'].params.parse({ name: 'n' }), { name: 'n' });
});

test('a value that is not a size is a bad_request naming the field and the value, with a hint', () => {
  const cases: [keyof typeof methods, Record<string, unknown>, string][] = [
    ['vm.create', { memory: '2Q' }, 'invalid memory "2Q": not a size'],
    ['vm.create', { memory: '' }, 'invalid memory "": not a size'],
    ['vm.create', { memory: 0 }, 'invalid memory 0: not a size'],
    ['vm.create', { memory: '-1' }, 'invalid memory "-1": not a size'],
    ['vm.create', { disk_size: '1e12' }, 'invalid disk_size "1e12": not a size'],
    ['vm.set', { ref: 'x', disk_size: 'abc' }, 'invalid disk_size "abc": not a size'],
    ['image.pull', { ref: 'x', size: '5X' }, 'invalid size "5X": not a size'],
    ['image.build', { name: 'x', size: -3 }, 'invalid size -3: not a size'],
  ];
  for (const [method, params, message] of cases) {
    assert.throws(
      () => methods[method].params.parse(params),
      (e: unknown) =>
        e instanceof AppError &&
        e.code === 'bad_request' &&
        e.message === message &&
        /number of MiB or with a unit K, M, G or T/.test(e.hint ?? ''),
      `${method} ${JSON.stringify(params)}`,
    );
  }
});

test('the parsed names are not wire params: a client sending memory_mib or disk_bytes is refused by name', () => {
  for (const key of ['memory_mib', 'disk_bytes']) {
    const r = methods['vm.create'].params.safeParse({ [key]: 1 });
    assert.equal(r.success, false);
    assert.match(JSON.stringify(r.error?.issues), new RegExp(key));
  }
});
