import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const childProcess = [
  { name: 'node:child_process', message: 'run host programs through the CommandRunner in src/system/' },
  { name: 'child_process', message: 'run host programs through the CommandRunner in src/system/' },
];
const noTestImports = [
  {
    regex: '(^|/)test/',
    message: 'production code under src/ must not import from test/ (fakes and helpers live there)',
  },
];

export default tseslint.config(
  { ignores: ['dist/', 'packages/*/dist/', 'node_modules/', 'guest-src/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-control-regex': 'off',
      // Host programs run only through the runner seam in src/system/ (ARCHITECTURE.md).
      'no-restricted-imports': ['error', { paths: childProcess }],
    },
  },
  {
    // Production code never imports test code (fakes and helpers live in test/).
    files: ['src/**/*.ts'],
    ignores: ['src/**/*.test.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: childProcess, patterns: noTestImports }] },
  },
  {
    files: ['src/system/**/*.ts'],
    ignores: ['src/system/**/*.test.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: noTestImports }] },
  },
  {
    files: ['src/system/**/*.test.ts', 'test/helpers/**/*.ts', 'scripts/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['bin/*.js', 'scripts/*.mjs', 'examples/*.mjs', 'eslint.config.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
