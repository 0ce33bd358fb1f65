/*
 * Type-level tests of the CLI↔daemon contract (api/methods.ts), checked by
 * `npm run typecheck` and never run. Each line under a `@ts-expect-error`
 * must fail to compile: should the contract stop catching that mismatch,
 * the unused directive is itself the compile error.
 */
import type { DaemonClient } from '../cli/client.js';
import type { Handler, Routes } from '../daemon/server.js';
import type { ImageView, VmView } from './methods.js';

declare const vm: VmView;

/** Callers: params are checked against the method, the result is inferred from it. */
export async function callers(client: DaemonClient): Promise<string> {
  const shown = await client.call('vm.show', { ref: 'dev' });
  const inferred: VmView = shown;
  // @ts-expect-error a wrong param type: ref is a string
  await client.call('vm.show', { ref: 42 });
  // @ts-expect-error an unknown param
  await client.call('vm.show', { ref: 'dev', force: true });
  // @ts-expect-error a missing param
  await client.call('image.show', {});
  // @ts-expect-error memory is a size: a string like "2G" or a number of MiB
  await client.call('vm.create', { memory: true });
  // @ts-expect-error the handler gets memory_mib; a client sends memory
  await client.call('vm.create', { memory_mib: 2048 });
  // @ts-expect-error the result of vm.show is a VmView, not an ImageView
  const wrong: ImageView = await client.call('vm.show', { ref: 'dev' });
  // @ts-expect-error not a method
  await client.call('vm.frobnicate', {});
  return `${inferred.name} ${wrong.name}`;
}

/** Handlers: a wrong param or result type does not compile. */
export const rightHandler: Handler<'vm.show'> = (p) => ({ ...vm, name: p.ref });
// @ts-expect-error a wrong param type: vm.show's ref is a string
export const wrongParam: Handler<'vm.show'> = (p: { ref: number }) => ({ ...vm, vcpu: p.ref });
// @ts-expect-error a wrong result type: vm.show answers a VmView
export const wrongResult: Handler<'vm.show'> = () => ({ name: 'dev' });
// @ts-expect-error a wrong result type for an async handler
export const wrongAsyncResult: Handler<'vm.delete'> = async () => ({ deleted: ['dev'] });
// @ts-expect-error sizes arrive parsed: the handler sees memory_mib (a number), not memory
export const unparsedSize: Handler<'vm.create'> = (p) => ({ ...vm, name: String(p.memory) });
export const parsedSize: Handler<'vm.create'> = (p) => ({ ...vm, memory_mib: p.memory_mib ?? 0 });

/** A route group must serve every method of its group, each with its own types. */
// @ts-expect-error kernel.pull (and the rest of the group) missing
export const incomplete: Routes<'kernel'> = { 'kernel.list': () => [] };
