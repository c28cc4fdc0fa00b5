/**
 * A magnet link's download checks what it can before it waits for the metadata (which may take
 * --timeout to come): the selection options' syntax (exit 2) and an -o that can never work
 * (exit 6), as a .torrent's download does at once. The link's only peer refuses connections:
 * without the early checks each run waited its --timeout, then exited 4.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';

const fx = useFixture();
const LINK = 'magnet:?xt=urn:btih:b6fc0ad826a90241a77077dceecb041124469f74&x.pe=127.0.0.1:9';

describe('a magnet link: checks before the metadata', () => {
  it('a malformed --select or an empty glob is a usage error at once', async () => {
    for (const [args, message] of [
      [['--select', 'abc'], '--select "abc": expected file numbers like 1,3-5'],
      [['--select', ''], '--select "": expected file numbers like 1,3-5'],
      [['--select', '0'], '--select: no file 0: files are numbered from 1'],
      [['--select', '3-1'], '--select: range 3-1 goes down'],
      [['--include', ''], 'a glob of --include/--exclude is empty'],
      [['--exclude', ''], 'a glob of --include/--exclude is empty'],
    ] as const) {
      const out = path.join(fx.dir, 'out');
      const r = await runCli(['download', LINK, '-o', out, '--no-dht', '--timeout', '30', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toMatch(/no metadata/);
    }
  });

  it('an -o that can never work is a disk error at once', async () => {
    const file = path.join(fx.dir, 'afile');
    await writeFile(file, 'x');
    for (const [output, message] of [
      [`${file}/`, `output ${file} exists and is not a directory`],
      [path.join(file, 'x'), `output ${file}/x: ${file} is a file, not a folder`],
    ] as const) {
      const r = await runCli(['download', LINK, '-o', output, '--no-dht', '--timeout', '30']);
      expect(r.code, `${output}: ${r.stderr}`).toBe(6);
      expect(r.stderr).toContain(message);
    }
  });
});
