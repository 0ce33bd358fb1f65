import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError, cancelled, errorMessage, isAbortError } from './errors.js';

test('cancelled() is the cancelled AppError every aborted operation reports', () => {
  const e = cancelled();
  assert.ok(e instanceof AppError);
  assert.equal(e.code, 'cancelled');
  assert.equal(e.message, 'operation cancelled');
});

test('isAbortError: AbortError and TimeoutError, nothing else', () => {
  assert.equal(isAbortError(new DOMException('x', 'AbortError')), true, 'an aborted signal’s reason');
  assert.equal(isAbortError(Object.assign(new Error('x'), { name: 'AbortError' })), true);
  assert.equal(isAbortError(Object.assign(new Error('x'), { name: 'TimeoutError' })), true);
  assert.equal(isAbortError(new Error('AbortError')), false);
  assert.equal(isAbortError('AbortError'), false);
});

test('errorMessage adds the cause when it says more', () => {
  assert.equal(
    errorMessage(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED') })),
    'fetch failed: connect ECONNREFUSED',
  );
  assert.equal(errorMessage(new Error('same', { cause: new Error('same') })), 'same');
  assert.equal(errorMessage(new Error('plain')), 'plain');
  assert.equal(errorMessage(42), '42');
});
