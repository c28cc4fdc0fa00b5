/**
 * `--select`, `--include`, `--exclude` through the real CLI with fake seeders: only the pieces of
 * the selected files are fetched, files not selected are never created (their bytes in boundary
 * pieces go to `<root>.tdl-parts`), `tdl verify` reports the selection, and a wider selection
 * later fetches only what is missing.
 */
import { existsSync } from 'node:fs';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InterruptedError } from '../../src/errors.js';
import { runCli } from '../helpers/cli.js';
import type { FakeSeeder } from '../helpers/fake-seeder.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';
import { freePort } from '../helpers/ports.js';

const fx = useFixture();
const PIECE = 32 * 1024;
const peerArgs = (s: FakeSeeder) => ['--peer', `127.0.0.1:${s.port}`, '--no-listen'];

/** Five files whose boundaries fall inside pieces. */
function fiveFiles() {
  const sizes = [50_000, 70_000, 100_000, 40_000, 90_000];
  const files = sizes.map((n, i) => ({
    path: i === 4 ? ['sub', `f${i + 1}.bin`] : [`f${i + 1}.bin`],
    data: randomBytesSeeded(n, `sel-${i}`),
  }));
  return { files, t: makeTorrent({ name: 'five', pieceLength: PIECE, files }) };
}

/** The five files with f3 alone downloaded: its boundary pieces' copies are in the side file. */
async function thirdOnly() {
  const { files, t } = fiveFiles();
  const torrent = await fx.writeTorrent(t);
  const out = path.join(fx.dir, 'out');
  const s = await fx.seeder(t, PIECE);
  const got = await runCli(['download', torrent, '-o', out, '--select', '3', ...peerArgs(s)]);
  expect(got.code, got.stderr).toBe(0);
  await s.close();
  return { files, torrent, out };
}

/** Pieces that hold bytes of file `i`. */
function piecesOf(files: { data: Buffer }[], i: number): number[] {
  let off = 0;
  for (let k = 0; k < i; k++) off += files[k]!.data.length;
  const first = Math.floor(off / PIECE);
  const last = Math.floor((off + files[i]!.data.length - 1) / PIECE);
  return Array.from({ length: last - first + 1 }, (_, k) => first + k);
}

describe('--select', () => {
  it('a run that fails having fetched nothing leaves nothing, no parts file either', async () => {
    const { t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const r = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--select',
      '3',
      '--peer',
      '127.0.0.1:9',
      '--no-dht',
      '--no-listen',
      '--timeout',
      '1',
    ]);
    expect(r.code, r.stderr).toBe(4);
    expect(await readdir(fx.dir)).toEqual(['t.torrent']);
  });

  it('fetches one file in the middle, creates only it, and widens later without refetching', async () => {
    const { files, t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const s1 = await fx.seeder(t, PIECE);
    const r = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--select',
      '3',
      '--json',
      ...peerArgs(s1),
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await readdir(out)).toEqual(['f3.bin']);
    expect((await readFile(path.join(out, 'f3.bin'))).equals(files[2]!.data)).toBe(true);
    // Received at most the file plus two pieces, and only the pieces that touch it.
    expect(s1.served).toBeLessThanOrEqual(files[2]!.data.length + 2 * PIECE);
    expect([...s1.servedBlocks.keys()].sort((a, b) => a - b)).toEqual(piecesOf(files, 2));
    const started = r.events.find((e) => e['event'] === 'started')!;
    expect(started['selectedFiles']).toBe(1);
    expect(started['selectedSize']).toBe(100_000);
    // The boundary bytes of files 2 and 4 are beside the output, not in files of theirs.
    expect((await readdir(fx.dir)).sort()).toEqual(['out', 'out.tdl-parts', 't.torrent']);

    const v = await runCli(['verify', torrent, '-o', out, '--select', '3', '--json']);
    expect(v.code).toBe(0);
    const ev = v.events.find((e) => e['event'] === 'verified')!;
    expect(ev['complete']).toBe(true);
    expect(ev['selectedFiles']).toBe(1);
    expect(ev['size']).toBe(100_000);
    const text = await runCli(['verify', torrent, '-o', out, '--select', '3']);
    expect(text.stdout).toContain('selected: 1 of 5 files');
    // Repeated, the lists add up: files 3 and 5, of which 5 is not there.
    const two = await runCli(['verify', torrent, '-o', out, '--select', '3', '--select', '5']);
    expect(two.code).toBe(5);
    expect(two.stdout).toContain('selected: 2 of 5 files');
    expect((await runCli(['verify', torrent, '-o', out])).code).toBe(5);

    // Wider: files 2 to 4. The pieces already held (those of file 3) are not fetched again.
    const s2 = await fx.seeder(t, PIECE);
    const r2 = await runCli(['download', torrent, '-o', out, '--select', '2-4', ...peerArgs(s2)]);
    expect(r2.stderr).toBe('');
    expect(r2.code).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['f2.bin', 'f3.bin', 'f4.bin']);
    for (const i of [1, 2, 3]) {
      expect((await readFile(path.join(out, `f${i + 1}.bin`))).equals(files[i]!.data)).toBe(true);
    }
    const had = new Set(piecesOf(files, 2));
    for (const p of s2.servedBlocks.keys()) expect(had.has(p)).toBe(false);

    // Everything: the rest arrives, and the side file goes once every file is complete.
    const s3 = await fx.seeder(t, PIECE);
    const r3 = await runCli(['download', torrent, '-o', out, ...peerArgs(s3)]);
    expect(r3.code).toBe(0);
    for (const [i, f] of files.entries()) {
      expect((await readFile(path.join(out, ...f.path))).equals(files[i]!.data)).toBe(true);
    }
    expect((await readdir(fx.dir)).sort()).toEqual(['out', 't.torrent']);
    expect((await runCli(['verify', torrent, '-o', out])).code).toBe(0);

    // Narrower again, over the whole torrent on disk: the boundary pieces read the files not
    // selected (there is no side file now), so all is complete and nothing is fetched again.
    const narrow = await runCli(['verify', torrent, '-o', out, '--select', '3', '--json']);
    expect(narrow.code, narrow.stdout).toBe(0);
    expect(narrow.events.find((e) => e['event'] === 'verified')).toMatchObject({
      complete: true,
      piecesCorrupt: 0,
      piecesMissing: 0,
    });
    const s4 = await fx.seeder(t, PIECE);
    const r4 = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--select',
      '3',
      '--json',
      ...peerArgs(s4),
    ]);
    expect(r4.code, r4.stderr).toBe(0);
    expect(s4.served).toBe(0);
    const done = r4.events.find((e) => e['event'] === 'done')!;
    // The selection's figures, as the first run gave them (not the whole torrent's).
    const first = r.events.find((e) => e['event'] === 'done')!;
    expect(done).toMatchObject({ size: first['size'], selectedFiles: 1, selectedSize: 100_000 });
    expect(done['size']).toBeLessThan(350_000);
    for (const [i, f] of files.entries()) {
      expect((await readFile(path.join(out, ...f.path))).equals(files[i]!.data)).toBe(true);
    }
  });

  it('other data in a file not selected is not replaced, nor said to be', async () => {
    const { files, t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'other');
    const s = await fx.seeder(t, PIECE);
    expect((await runCli(['download', torrent, '-o', out, ...peerArgs(s)])).code).toBe(0);
    // f4 now holds other bytes; f5, selected, is complete and right.
    const other = randomBytesSeeded(files[3]!.data.length, 'not-f4');
    await writeFile(path.join(out, 'f4.bin'), other);
    const r = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--select',
      '5',
      '--json',
      ...peerArgs(s),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.events.filter((e) => e['event'] === 'warning').map((e) => e['message']);
    expect(warnings.filter((m) => /not match/.test(String(m)))).toEqual([]);
    expect(r.events.find((e) => e['event'] === 'done')).toMatchObject({ replaced: 0 });
    expect((await readFile(path.join(out, 'f4.bin'))).equals(other)).toBe(true);
    expect((await readFile(path.join(out, 'sub', 'f5.bin'))).equals(files[4]!.data)).toBe(true);
  });

  it('a finished selection whose side file was deleted is still the output, not nested', async () => {
    const { files, t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const s1 = await fx.seeder(t, PIECE);
    expect(
      (await runCli(['download', torrent, '-o', out, '--select', '3', ...peerArgs(s1)])).code,
    ).toBe(0);
    await rm(`${out}.tdl-parts`);
    const s2 = await fx.seeder(t, PIECE);
    const r = await runCli(['download', torrent, '-o', out, '--select', '2,3', ...peerArgs(s2)]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['f2.bin', 'f3.bin']);
    for (const i of [1, 2]) {
      expect((await readFile(path.join(out, `f${i + 1}.bin`))).equals(files[i]!.data)).toBe(true);
    }
    // File 3's pieces were kept; only file 2's and the boundary pieces came again.
    const inner = piecesOf(files, 2).slice(1, -1);
    for (const p of inner) expect(s2.servedBlocks.has(p)).toBe(false);
  });

  it("a failed run keeps an earlier run's side file: an empty file selected stays the output", async () => {
    const files = [
      { path: ['a.bin'], data: randomBytesSeeded(70_000, 'sel-empty-a') },
      { path: ['nested', 'empty'], data: Buffer.alloc(0) },
      { path: ['b.bin'], data: randomBytesSeeded(50_000, 'sel-empty-b') },
    ];
    const t = makeTorrent({ name: 'multi', pieceLength: PIECE, files });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const s1 = await fx.seeder(t, PIECE);
    const first = await runCli(['download', torrent, '-o', out, '--select', '2', ...peerArgs(s1)]);
    expect(first.code, first.stderr).toBe(0);
    expect(existsSync(`${out}.tdl-parts`)).toBe(true);
    // Nothing found, nothing fetched: this run's own files go, the earlier run's stay.
    const failed = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--select',
      '1',
      '--peer',
      '127.0.0.1:9',
      '--no-dht',
      '--no-listen',
      '--timeout',
      '1',
    ]);
    expect(failed.code, failed.stderr).toBe(4);
    expect(existsSync(`${out}.tdl-parts`)).toBe(true);
    const s2 = await fx.seeder(t, PIECE);
    const r = await runCli(['download', torrent, '-o', out, '--select', '1', ...peerArgs(s2)]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['a.bin', 'nested']);
    expect((await readFile(path.join(out, 'a.bin'))).equals(files[0]!.data)).toBe(true);
  });

  it('resumes a selection after Ctrl-C, boundary pieces included', async () => {
    const { files, t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const slow = await fx.seeder(t, PIECE, { rateLimit: 100 * 1024 });
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new InterruptedError('SIGINT')), 700);
    const r1 = await runCli(
      ['download', torrent, '-o', out, '--select', '2,4', ...peerArgs(slow)],
      {
        signal: ctl.signal,
      },
    );
    clearTimeout(timer);
    expect(r1.code).toBe(130);
    expect(existsSync(path.join(fx.dir, 'out.tdl-resume'))).toBe(true);
    const s = await fx.seeder(t, PIECE);
    const r2 = await runCli(['download', torrent, '-o', out, '--select', '2,4', ...peerArgs(s)]);
    expect(r2.code).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['f2.bin', 'f4.bin']);
    for (const i of [1, 3]) {
      expect((await readFile(path.join(out, `f${i + 1}.bin`))).equals(files[i]!.data)).toBe(true);
    }
    // Nothing was fetched twice but what was in flight at the interrupt.
    const wanted = new Set([...piecesOf(files, 1), ...piecesOf(files, 3)]);
    for (const p of s.servedBlocks.keys()) expect(wanted.has(p)).toBe(true);
    expect(slow.served + s.served).toBeLessThanOrEqual(wanted.size * PIECE + 2 * PIECE);
    expect((await runCli(['verify', torrent, '-o', out, '--select', '2,4'])).code).toBe(0);
  });

  it('narrowed after a wider run stopped: boundary pieces it holds are kept, not refetched', async () => {
    const { files, t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    // The whole torrent but its last piece: the run stops, every file left under its working
    // name, the pieces of f3 (boundary pieces with f2 and f4 included) on disk.
    const last = t.pieces.length - 1;
    const partial = await fx.seeder(t, PIECE, { pieces: (i) => i !== last });
    const r1 = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--timeout',
      '2',
      ...peerArgs(partial),
    ]);
    expect(r1.code, r1.stderr).toBe(5);
    expect(existsSync(path.join(out, 'f2.bin.part'))).toBe(true);
    const s = await fx.seeder(t, PIECE);
    const r2 = await runCli(['download', torrent, '-o', out, '--select', '3', ...peerArgs(s)]);
    expect(r2.code, r2.stderr).toBe(0);
    // The bytes of f2 and f4 in those pieces were read from their working copies: no piece is
    // taken for foreign data, and none is fetched again.
    expect(r2.stderr).not.toMatch(/do(es)? not match/);
    expect(s.served).toBe(0);
    expect((await readFile(path.join(out, 'f3.bin'))).equals(files[2]!.data)).toBe(true);
  });

  it('widened, a file an earlier selection completed keeps its name while the run goes on', async () => {
    const { files, t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const s = await fx.seeder(t, PIECE);
    const r = await runCli(['download', torrent, '-o', out, '--select', '1', ...peerArgs(s)]);
    expect(r.code).toBe(0);
    await s.close();
    // File 2's bytes in piece 1 (shared with file 1) come from the parts file; the rest of it
    // from no one: the run fails. File 1 was not written to, and is still there by its name.
    const r2 = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--select',
      '1,2',
      '--peer',
      '127.0.0.1:1',
      '--no-listen',
      '--timeout',
      '1',
    ]);
    expect(r2.code).toBe(4);
    expect((await readdir(out)).sort()).toEqual(['f1.bin', 'f2.bin.part']);
    expect((await readFile(path.join(out, 'f1.bin'))).equals(files[0]!.data)).toBe(true);
    const copied = PIECE * 2 - files[0]!.data.length;
    const part = await readFile(path.join(out, 'f2.bin.part'));
    expect(part.subarray(0, copied).equals(files[1]!.data.subarray(0, copied))).toBe(true);
  });

  it('files wholly inside held boundary pieces are filled from the parts file, offline', async () => {
    const files = [10_000, 100, 60_000].map((n, i) => ({
      path: [`g${i + 1}.bin`],
      data: randomBytesSeeded(n, `inner-${i}`),
    }));
    const t = makeTorrent({ name: 'inner', pieceLength: PIECE, files });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const s = await fx.seeder(t, PIECE);
    const r = await runCli(['download', torrent, '-o', out, '--select', '3', ...peerArgs(s)]);
    expect(r.code).toBe(0);
    expect(await readdir(out)).toEqual(['g3.bin']);
    await s.close();
    // Files 1 and 2 lie in piece 0, which is held: nothing to fetch, no peer needed.
    const r2 = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--peer',
      '127.0.0.1:1',
      '--no-listen',
    ]);
    expect(r2.stderr).toBe('');
    expect(r2.code).toBe(0);
    for (const [i, f] of files.entries()) {
      expect((await readFile(path.join(out, `g${i + 1}.bin`))).equals(f.data)).toBe(true);
    }
    expect((await readdir(fx.dir)).sort()).toEqual(['out', 't.torrent']);
    expect((await runCli(['verify', torrent, '-o', out])).code).toBe(0);
  });

  it('tdl seed --select writes nothing: a boundary piece its file holds wrong is refused, not mended', async () => {
    const { files, torrent, out } = await thirdOnly();
    // f3's first byte lies in a piece shared with f2, whose whole copy is in the side file.
    const f3 = path.join(out, 'f3.bin');
    const edited = Buffer.from(files[2]!.data);
    edited[0] = edited[0]! ^ 0xff;
    await writeFile(f3, edited);
    const parts = path.join(fx.dir, 'out.tdl-parts');
    const side = await readFile(parts);
    const none = ['--peer', '127.0.0.1:1', '--no-dht', '--no-listen', '--seed-time', '0'];
    const v = await runCli(['verify', torrent, '-o', out, '--select', '3']);
    expect(v.code).toBe(5);
    const r = await runCli(['seed', torrent, '-o', out, '--select', '3', ...none]);
    // As verify finds it: incomplete, and the user's file is left as it is.
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/the data under .* is incomplete .*finish it with tdl download/);
    expect((await readFile(f3)).equals(edited)).toBe(true);
    expect((await readFile(parts)).equals(side)).toBe(true);
    // tdl download mends it from the side copy, with no peer to ask.
    const mend = await runCli(['download', torrent, '-o', out, '--select', '3', ...none]);
    expect(mend.code, mend.stderr).toBe(0);
    expect((await readFile(f3)).equals(files[2]!.data)).toBe(true);
  });

  it("counts the selection's pieces only, not boundary pieces an earlier selection kept", async () => {
    const { files, torrent, out } = await thirdOnly();
    const f4 = piecesOf(files, 3);
    const f5 = piecesOf(files, 4);
    // f4's first piece is f3's last, held; its last is shared with f5, not there.
    const none = ['--peer', '127.0.0.1:1', '--no-dht', '--no-listen', '--seed-time', '0'];
    const seed = await runCli(['seed', torrent, '-o', out, '--select', '4', ...none]);
    expect(seed.code, seed.stderr).toBe(5);
    expect(seed.stderr).toContain(`is incomplete (1 of ${f4.length} pieces valid)`);
    expect(seed.stderr).not.toContain('--select');
    // Without a selection, the hint for a folder that holds some of the files whole.
    const all = await runCli(['seed', torrent, '-o', out, ...none]);
    expect(all.code, all.stderr).toBe(5);
    expect(all.stderr).toContain(
      'finish it with tdl download first, or seed the files that are complete with --select (tdl verify lists them)',
    );
    const v = await runCli(['verify', torrent, '-o', out, '--select', '4', '--json']);
    expect(v.events.at(-1)!['selectedFiles']).toBe(1);
    // A download of f5: progress counts its pieces, not the four of f3 on disk.
    const { t } = fiveFiles();
    const s = await fx.seeder(t, PIECE);
    const r = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--select',
      '5',
      ...peerArgs(s),
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const done = r.events.filter((e) => e['event'] === 'progress').map((e) => e['piecesDone']);
    expect(done.length).toBeGreaterThan(0);
    expect(Math.max(...(done as number[]))).toBe(f5.length);
  });

  it('verify --select: a boundary piece whose copy is damaged is missing, not corrupt', async () => {
    const { files, torrent, out } = await thirdOnly();
    // The copy of f3's last piece: its last byte is f4's (not selected). The side file is a
    // 28-byte header, then records of a piece index and length (4 bytes each) and the piece.
    const parts = path.join(fx.dir, 'out.tdl-parts');
    const side = await readFile(parts);
    const last = piecesOf(files, 2).at(-1)!;
    let at = 28;
    while (side.readUInt32BE(at) !== last) at += 8 + side.readUInt32BE(at + 4);
    const end = at + 8 + side.readUInt32BE(at + 4) - 1;
    side[end] = side[end]! ^ 0xff;
    await writeFile(parts, side);
    const v = await runCli(['verify', torrent, '-o', out, '--select', '3', '--json']);
    expect(v.code).toBe(5);
    expect(v.events.find((e) => e['event'] === 'verified')).toMatchObject({
      piecesCorrupt: 0,
      piecesMissing: 1,
    });
    // f3 itself is right: a download fetches the piece again and finds nothing else to do.
    expect((await readFile(path.join(out, 'f3.bin'))).equals(files[2]!.data)).toBe(true);
  });

  it('tdl seed --select serves the selected files, boundary pieces whole from the parts file', async () => {
    const { files, t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const s = await fx.seeder(t, PIECE);
    expect(
      (await runCli(['download', torrent, '-o', out, '--select', '3', ...peerArgs(s)])).code,
    ).toBe(0);
    await s.close();
    const port = await freePort();
    const stop = new AbortController();
    const seeding = runCli(
      [
        'seed',
        torrent,
        '-o',
        out,
        '--select',
        '3',
        '--port',
        String(port),
        '--peer',
        '127.0.0.1:1',
      ],
      { signal: stop.signal },
    );
    try {
      const out2 = path.join(fx.dir, 'out2');
      let r: Awaited<ReturnType<typeof runCli>> | null = null;
      // The seeder may not listen yet: try again a few times.
      for (let i = 0; i < 20; i++) {
        r = await runCli([
          'download',
          torrent,
          '-o',
          out2,
          '--select',
          '3',
          '--peer',
          `127.0.0.1:${port}`,
          '--no-listen',
          '--timeout',
          '10',
        ]);
        if (r.code !== 4) break;
      }
      expect(r!.stderr).toBe('');
      expect(r!.code).toBe(0);
      expect((await readFile(path.join(out2, 'f3.bin'))).equals(files[2]!.data)).toBe(true);
    } finally {
      stop.abort(new InterruptedError('SIGINT'));
      expect((await seeding).code).toBe(0);
    }
  }, 60_000);

  it('--include and --exclude match paths inside the torrent', async () => {
    const { files, t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const s = await fx.seeder(t, PIECE);
    const r = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--include',
      '*.bin',
      '--exclude',
      'f[1].bin',
      '--exclude',
      'f2*',
      '--exclude',
      'sub/**',
      '--exclude',
      'sub',
      ...peerArgs(s),
    ]);
    // `[1]` is literal, and `sub` a folder (a pattern without / matches names of files): both
    // leave every file in, which is said.
    expect(r.stderr).toBe(
      'tdl: warning: --exclude "f[1].bin" matches no file of the torrent\n' +
        'tdl: warning: --exclude "sub" matches no file of the torrent (a pattern without / matches file names: for the folder, "sub/**")\n',
    );
    expect(r.code).toBe(0);
    // `[1]` is literal text in these globs: f1.bin stays selected.
    expect((await readdir(out)).sort()).toEqual(['f1.bin', 'f3.bin', 'f4.bin']);
    expect(existsSync(path.join(out, 'sub'))).toBe(false);
    for (const i of [0, 2, 3]) {
      expect((await readFile(path.join(out, `f${i + 1}.bin`))).equals(files[i]!.data)).toBe(true);
    }
  });

  it('tells the trackers what the whole torrent lacks; a selection of every file completes', async () => {
    const { files, t: bare } = fiveFiles();
    const s = await fx.seeder(bare, PIECE);
    const tr = await fx.tracker([s]);
    const t = makeTorrent({ name: 'five', pieceLength: PIECE, files, announce: tr.url });
    const torrent = await fx.writeTorrent(t);
    const total = files.reduce((n, f) => n + f.data.length, 0);
    const common = ['--no-dht', '--no-listen'];
    // One file, then seeding a moment: never left=0 (that is a seed to a tracker).
    const one = await runCli([
      'download',
      torrent,
      '-o',
      path.join(fx.dir, 'one'),
      '--select',
      '3',
      '--seed-time',
      '0.01',
      ...common,
    ]);
    expect(one.code, one.stderr).toBe(0);
    const seen = tr.announces.map((a) => [a.event ?? '', a.left]);
    expect(seen[0]).toEqual(['started', total]);
    expect(seen.at(-1)![0]).toBe('stopped');
    const fetched = piecesOf(files, 2).length * PIECE;
    expect(seen.at(-1)![1]).toBe(total - fetched);
    expect(seen.map(([e]) => e)).not.toContain('completed');
    // Every file named: the torrent is complete, and the tracker hears it.
    tr.announces.length = 0;
    const all = await runCli([
      'download',
      torrent,
      '-o',
      path.join(fx.dir, 'all'),
      '--select',
      '1-5',
      ...common,
    ]);
    expect(all.code, all.stderr).toBe(0);
    expect(tr.announces.map((a) => [a.event ?? '', a.left])).toEqual([
      ['started', total],
      ['completed', 0],
      ['stopped', 0],
    ]);
    expect(existsSync(path.join(fx.dir, 'all.tdl-parts'))).toBe(false);
  });

  it('refuses a selection that names no file or a file that does not exist', async () => {
    const { t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    const bad = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--select',
      '6',
      '--peer',
      '127.0.0.1:1',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('file 6 does not exist');
    const none = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--exclude',
      '*',
      '--peer',
      '127.0.0.1:1',
    ]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('leaves no file');
    const syntax = await runCli(['verify', torrent, '-o', out, '--select', '1,x']);
    expect(syntax.code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });
});
