/**
 * The words `tdl verify` prints for a shell to run: bash reads each back as the very string,
 * control characters included, and none is printed raw.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { shellWord } from '../../src/cli/verify-command.js';

describe('shellWord', () => {
  const names = [
    '/data/out/a.bin',
    '/data/my files/a b.bin',
    "/data/it's.bin",
    '/data/$HOME/`x`/a.bin',
    '/data/nl\ndir/big.bin',
    "/data/esc\u001b[31m/it's\\n.bin",
    '/data/tab\there\\/x',
    '/data/bidi\u202eevil',
    '/data/café/é.bin',
  ];
  it('prints no control character, and bash reads each word back as it was', () => {
    for (const name of names) {
      const word = shellWord(name);
      expect(word, name).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
      const r = spawnSync('bash', ['-c', `printf '%s' ${word}`], { encoding: 'utf8' });
      expect(r.stdout, word).toBe(name);
    }
  });

  it('leaves a plain path as it is', () => {
    expect(shellWord('/data/out/a.bin')).toBe('/data/out/a.bin');
    expect(shellWord('/data/my files')).toBe("'/data/my files'");
  });
});
