/**
 * A download finished some other way (another client, a copy) into a folder where an interrupted
 * tdl run left a `.part`: both names of a file are there, and the `.part` is what tdl reads (a
 * download resumes it). `tdl verify` and `tdl seed` say so, rather than reporting a complete
 * file as partial with nothing to explain it.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 32 * 1024;

describe('a file under both names', () => {
  it('verify and seed name the .part they read and the file beside it', async () => {
    const files = [
      { path: ['a.bin'], data: randomBytesSeeded(50_000, 'both-a') },
      { path: ['sub', 'b.bin'], data: randomBytesSeeded(70_000, 'both-b') },
    ];
    const t = makeTorrent({ name: 'both', pieceLength: PIECE, files });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'both');
    for (const f of files) {
      await mkdir(path.dirname(path.join(out, ...f.path)), { recursive: true });
      await writeFile(path.join(out, ...f.path), f.data);
    }
    // What an interrupted run left of b.bin.
    const part = path.join(out, 'sub', 'b.bin.part');
    await writeFile(part, files[1]!.data.subarray(0, 10_000));

    const v = await runCli(['verify', torrent, '-o', out]);
    expect(v.code, v.stderr).toBe(5);
    expect(v.stdout).toContain(
      `note:     both/sub/b.bin.part was read, not both/sub/b.bin beside it (delete the one you do not want)`,
    );
    const s = await runCli(['seed', torrent, '-o', out, '--port', '0', '--no-dht']);
    expect(s.code).toBe(5);
    expect(s.stderr).toContain(`${part} was read, not ${path.join(out, 'sub', 'b.bin')} beside it`);

    await rm(part);
    const again = await runCli(['verify', torrent, '-o', out]);
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).not.toContain('note:');
  });

  it('seed refuses a valid .part beside a file it would replace, and changes nothing', async () => {
    const data = randomBytesSeeded(100_000, 'unfinished');
    const t = makeTorrent({ name: 'u.bin', pieceLength: PIECE, files: { data } });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'u.bin');
    const none = ['--port', '0', '--no-dht', '--seed-time', '0.001'];
    // A valid .part beside a file of the user's: renaming it would destroy that file.
    await writeFile(`${out}.part`, data);
    await writeFile(out, 'my other file');
    const before = await snapshot(fx.dir);
    const s = await runCli(['seed', torrent, '-o', out, ...none]);
    expect(s.code, s.stderr).toBe(5);
    expect(s.stderr).toBe(
      `tdl: the data under ${out} is valid but not finished: ${out}.part was read, and finishing ` +
        `would replace ${out} beside it: delete the one you do not want, or finish it with tdl ` +
        'download (no network needed)\n',
    );
    expect(await snapshot(fx.dir)).toEqual(before);
    expect((await runCli(['verify', torrent, '-o', out])).code).toBe(5);
    // Once the user removed the file beside it, seed finishes the .part (it is tdl's own).
    await rm(out);
    const again = await runCli(['seed', torrent, '-o', out, ...none]);
    expect(again.code, again.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  });
});

/** Every file under `dir` with its bytes (as a hex digest) and size: what a user would compare. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out[path.relative(dir, p)] = createHash('sha1')
      .update(await readFile(p))
      .digest('hex');
  }
  return out;
}
