/**
 * `tdl download` (and `tdl verify`) print the .torrent's own warnings; downloads around padding files.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();

describe('metainfo warnings in tdl download', () => {
  it('a torrent with trailing bytes downloads, with a warning (text and --json)', async () => {
    const data = randomBytesSeeded(100_000, 'w');
    const t = makeTorrent({ name: 'w.bin', pieceLength: 16384, files: { data } });
    const s = await fx.seeder(t, 16384);
    const file = path.join(fx.dir, 'trailing.torrent');
    await writeFile(file, Buffer.concat([t.torrent, Buffer.from('\r\n')]));

    const out = path.join(fx.dir, 'out.bin');
    const r = await runCli(['download', file, '-o', out, '--peer', `127.0.0.1:${s.port}`]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      "tdl: warning: 2 byte(s) after the end of the torrent's top-level dictionary were ignored\n",
    );
    expect((await readFile(out)).equals(data)).toBe(true);

    const out2 = path.join(fx.dir, 'out2.bin');
    const j = await runCli([
      'download',
      file,
      '-o',
      out2,
      '--json',
      '--peer',
      `127.0.0.1:${s.port}`,
    ]);
    expect(j.code).toBe(0);
    expect(j.events).toContainEqual({
      v: 1,
      event: 'warning',
      message: "2 byte(s) after the end of the torrent's top-level dictionary were ignored",
    });
    expect(existsSync(out2)).toBe(true);

    // tdl verify says it too: text on stderr, a warning event with --json.
    const v = await runCli(['verify', file, '-o', out]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toContain(
      "tdl: warning: 2 byte(s) after the end of the torrent's top-level dictionary were ignored\n",
    );
    const vj = await runCli(['verify', file, '-o', out, '--json']);
    expect(vj.code).toBe(0);
    expect(vj.events[0]).toEqual({
      v: 1,
      event: 'warning',
      message: "2 byte(s) after the end of the torrent's top-level dictionary were ignored",
    });
    expect((await runCli(['verify', file, '-o', out, '-q'])).stderr).toBe('');
  });
});
