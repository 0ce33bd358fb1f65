import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeStyle } from './style.js';
import { bar, progressPrinter } from './progress.js';

function sink(isTTY: boolean): NodeJS.WritableStream & { isTTY: boolean; text: string } {
  const s = {
    isTTY,
    text: '',
    write(c: string) {
      s.text += c;
      return true;
    },
  };
  return s as unknown as NodeJS.WritableStream & { isTTY: boolean; text: string };
}

test('bars', () => {
  assert.equal(bar(0, 100), `[${'.'.repeat(24)}] 0%`);
  assert.equal(bar(50, 100), `[${'#'.repeat(12)}${'.'.repeat(12)}] 50%`);
  assert.equal(bar(200, 100), `[${'#'.repeat(24)}] 100%`);
});

test('plain lines when not a TTY, each once; a redrawn bar on a TTY', () => {
  const style = makeStyle(false, {});
  const plain = sink(false);
  const p = progressPrinter(plain, style);
  p({ stage: 'image', message: 'building' });
  p({ stage: 'image', message: 'building' });
  p({ stage: 'download', message: 'layers', current: 5, total: 10 });
  assert.equal(plain.text, '[image] building\n[download] layers (50%)\n');
  const tty = sink(true);
  const t = progressPrinter(tty, style);
  t({ stage: 'download', message: 'layers', current: 5, total: 10 });
  t({ stage: 'download', message: 'layers', current: 10, total: 10 });
  t({ stage: 'image', message: 'writing ext4' });
  assert.match(
    tty.text,
    /^\r\x1b\[2K\[download\] layers \[#{12}\.{12}\] 50%\r\x1b\[2K\[download\] layers \[#{24}\] 100%\n\[image\] writing ext4\n$/,
  );
});
