import ts from 'typescript';

/*
 * The SDK's contract types, generated (packages/sdk/src/generated/contract.ts) from the result
 * shapes in this directory, so @banger/sdk stays free of runtime dependencies and of imports
 * from banger's sources, yet cannot drift: sdk-types.test.ts fails when the checked-in file is
 * not what `generateSdkTypes` makes (`node dist/scripts/gen-sdk-types.js` rewrites it).
 * Dev-time only: nothing at run time imports this module (it loads typescript).
 */

/** The roots, per file of src/api: these and every type they use from the same files. */
export const SDK_TYPE_ROOTS: Readonly<Record<string, readonly string[]>> = {
  'views.ts': ['VmView', 'VmPorts', 'VmPort', 'WorkspaceView'],
  'proc-contract.ts': ['ProcView', 'ProcRead', 'ProcExecResult', 'FsReadResult', 'FsWriteResult', 'FsListResult'],
};

export const SDK_TYPES_FILE = 'packages/sdk/src/generated/contract.ts';

/** Pure modules of src/api the SDK uses as code (no imports but Node's), copied verbatim under a header. */
export const SDK_COPIED: Readonly<Record<string, string>> = {
  'src/api/binframes.ts': 'packages/sdk/src/generated/binframes.ts',
};

/** The SDK's copy of `from` (a key of SDK_COPIED) whose text is `text`. Pure. */
export function sdkCopy(from: string, text: string): string {
  if (/^import /m.test(text)) throw new Error(`${from} imports other modules: the SDK cannot carry a copy of it`);
  return `// GENERATED: a copy of ${from} (src/api/sdk-types.ts); do not edit. \`npm run gen:sdk-types\` rewrites it.\n${text}`;
}

type Decl = ts.InterfaceDeclaration | ts.TypeAliasDeclaration;

/** The names a declaration refers to (type references and `extends`). */
function referenced(node: ts.Node, out = new Set<string>()): Set<string> {
  if (ts.isTypeReferenceNode(node) && ts.isIdentifier(node.typeName)) out.add(node.typeName.text);
  if (ts.isExpressionWithTypeArguments(node) && ts.isIdentifier(node.expression)) out.add(node.expression.text);
  ts.forEachChild(node, (c) => void referenced(c, out));
  return out;
}

/** `sources`: file name (a key of SDK_TYPE_ROOTS) → its text. Returns the generated module. Pure. */
export function generateSdkTypes(sources: Readonly<Record<string, string>>): string {
  const decls = new Map<string, { file: string; node: Decl; sf: ts.SourceFile; pos: number }>();
  for (const [file, text] of Object.entries(sources)) {
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
    sf.statements.forEach((s, pos) => {
      if (ts.isInterfaceDeclaration(s) || ts.isTypeAliasDeclaration(s)) {
        if (decls.has(s.name.text)) throw new Error(`${s.name.text} is declared twice (${file})`);
        decls.set(s.name.text, { file, node: s, sf, pos });
      }
    });
  }
  const keep = new Set<string>();
  const visit = (name: string, from: string): void => {
    if (keep.has(name)) return;
    const d = decls.get(name);
    if (!d) throw new Error(`${from} uses ${name}, which no file of the SDK's contract declares`);
    keep.add(name);
    for (const r of referenced(d.node)) if (decls.has(r) || !BUILTIN.has(r)) visit(r, name);
  };
  for (const [file, names] of Object.entries(SDK_TYPE_ROOTS))
    for (const n of names) {
      if (decls.get(n)?.file !== file) throw new Error(`${file} does not declare ${n}`);
      visit(n, file);
    }
  const files = Object.keys(SDK_TYPE_ROOTS);
  const chosen = [...keep]
    .map((n) => decls.get(n)!)
    .sort((a, b) => files.indexOf(a.file) - files.indexOf(b.file) || a.pos - b.pos);
  const parts = chosen.map((d) => {
    const full = d.node.getFullText(d.sf).replace(/^\s+/, '');
    return full.startsWith('export ') || full.startsWith('/') ? full : `export ${full}`;
  });
  return [
    '/*',
    ' * GENERATED from src/api (views.ts, proc-contract.ts) by src/api/sdk-types.ts: do not edit.',
    ' * Rewrite with `npm run build && npm run gen:sdk-types`; a unit test fails on drift.',
    ' */',
    '',
    parts.join('\n\n'),
    '',
  ].join('\n');
}

/** Type names that are not the contract's own. */
const BUILTIN = new Set(['Record', 'Partial', 'Readonly', 'Array', 'Pick', 'Omit', 'Exclude', 'Extract']);
