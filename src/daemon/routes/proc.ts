import type { VmFileOps } from '../../services/vm/fileops.js';
import type { VmProcesses } from '../../services/vm/processes.js';
import { servePty, streamFrames } from '../../services/vm/procstream.js';
import type { Routes } from '../server.js';

/** proc.*: daemon-side guest processes (services/vm/processes.ts). */
export function procRoutes(procs: VmProcesses): Routes<'proc'> {
  return {
    'proc.start': async (p, ctx) => (await procs.start(p, ctx)).view(),
    'proc.exec': (p, ctx) => procs.exec(p, ctx),
    'proc.read': (p, ctx) => procs.read(p, ctx),
    'proc.write': (p) => procs.write(p),
    'proc.signal': (p) => procs.signal(p),
    'proc.wait': (p, ctx) => procs.wait(p, ctx),
    'proc.stream': (p, ctx, sink) => streamFrames(procs.get(p.id), p, ctx.signal, (b) => sink.write(b)),
    'proc.resize': (p) => procs.resize(p),
    'proc.pty': (p, ctx, up) => servePty(procs, p, ctx, up),
    'proc.show': (p) => procs.get(p.id).view(),
    'proc.list': (p) => procs.list(p.ref),
  };
}

/** fs.*: whole small guest files in one call (services/vm/fileops.ts). */
export function fsRoutes(files: VmFileOps): Routes<'fs'> {
  return {
    'fs.read': (p, ctx) => files.read(p, ctx),
    'fs.write': (p, ctx) => files.write(p, ctx),
    'fs.list': (p, ctx) => files.list(p, ctx),
  };
}
