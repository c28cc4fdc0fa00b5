/**
 * What tdl finds beside or in place of its output at start and must not trust: a file cut short
 * whose missing tail hashes right as zeros (and a resume file that recorded such pieces); a
 * record of the side file (`<output>.tdl-parts`) whose bytes went bad; a FIFO where a
 * bookkeeping file goes, which must not hang tdl in an open that waits for a writer.
 *
 * The child-process cases run `node dist/bundle/main.js`: build first (`npm run build`).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readlinkSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeResume } from '../../src/storage/resume.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, killWithTest, MAIN, spawnTdl, until } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 32 * 1024;
/** How long a child may take at most before the test gives up on it (a busy machine). */
const CHILD_MS = 40_000;

beforeAll(() => assertBuilt());

/** The built CLI run to its end (killed with its group when the test ends first). */
async function runChild(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DEBUG: '', ...env },
  });
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => chunks.push(b));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  killWithTest(child, exited, fx.onClose);
  const code = await exited;
  return { code, stdout: Buffer.concat(chunks), stderr };
}

/** A process's exit, or a failure once `ms` have passed without one. */
async function exitWithin<T>(exited: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('a file cut short whose missing tail is zeros', () => {
  /** 16 pieces of random bytes, then 16 of zeros: a disk image, a preallocated file. */
  function image(): MadeTorrent {
    const data = Buffer.concat([randomBytesSeeded(16 * PIECE, 'image'), Buffer.alloc(16 * PIECE)]);
    return makeTorrent({ name: 'img.bin', pieceLength: PIECE, files: { data } });
  }

  /** The image's torrent, written, and its first `pieces` pieces at `img.bin` + `suffix`. */
  async function cutImage(pieces: number, suffix = '') {
    const t = image();
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'img.bin');
    await writeFile(out + suffix, t.data.subarray(0, pieces * PIECE));
    return { t, torrent, out };
  }

  /** Downloads the image to `out` from a full seeder, which must end with exit 0. */
  async function fetchImage(t: MadeTorrent, torrent: string, out: string) {
    const s = await fx.seeder(t, PIECE);
    const peer = ['--peer', `127.0.0.1:${s.port}`, '--no-listen', '--no-dht', '--json'];
    const r = await runCli(['download', torrent, '-o', out, ...peer]);
    expect(r.code, r.stderr).toBe(0);
    return r;
  }

  it('streams (-o -) a working copy cut after 8 pieces: the zero pieces past its end are fetched', async () => {
    const t = image();
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    // What a run killed after its first 8 pieces leaves (before any checkpoint recorded them).
    const work = path.join(cache, 'tdl', 'stream', t.infoHash.toString('hex'));
    await mkdir(work, { recursive: true });
    await writeFile(path.join(work, 'img.bin.part'), t.data.subarray(0, 8 * PIECE));
    const s = await fx.seeder(t, PIECE);
    const args = ['download', torrent, '-o', '-', '--peer', `127.0.0.1:${s.port}`];
    const r = await runChild([...args, '--no-listen', '--no-dht'], { XDG_CACHE_HOME: cache });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.length).toBe(t.data.length);
    expect(r.stdout.equals(t.data)).toBe(true);
    // Pieces 8-31 came from the seeder: the zeros past the file's end were not taken as present.
    for (let i = 8; i < 32; i++)
      expect(s.servedBlocks.get(i) ?? 0, `piece ${i}`).toBeGreaterThan(0);
  }, 60_000);

  it('-o FILE: the pieces past a short file are missing, not present', async () => {
    const { t, torrent, out } = await cutImage(8);
    const r = await fetchImage(t, torrent, out);
    const started = r.events.find((e) => e['event'] === 'started')!;
    expect(started['present']).toBe(8 * PIECE);
    const done = r.events.find((e) => e['event'] === 'done')!;
    expect(done['downloaded']).toBe(24 * PIECE);
    expect((await runCli(['verify', torrent, '-o', out, '-q'])).code).toBe(0);
  });

  it('tdl verify counts the pieces past a short file as missing, not valid', async () => {
    const { torrent, out } = await cutImage(8);
    const r = await runCli(['verify', torrent, '-o', out, '--json']);
    expect(r.code).toBe(5);
    const result = r.events.find((e) => e['event'] === 'verified')!;
    expect(result['piecesValid']).toBe(8);
  });

  it('a resume file that recorded pieces past the end of its file is not believed for them', async () => {
    const { t, torrent, out } = await cutImage(8, '.part');
    const part = `${out}.part`;
    // What an earlier run wrote when it counted the zero pieces as present: every piece but 8-15,
    // with the file's own stamp, so that the file is trusted without a read.
    const st = await stat(part, { bigint: true });
    const have = new Bitfield(t.pieces.length);
    for (let i = 0; i < t.pieces.length; i++) if (i < 8 || i >= 16) have.set(i);
    const resume = encodeResume({
      infoHash: t.infoHash,
      pieceLength: PIECE,
      totalLength: t.data.length,
      pieceCount: t.pieces.length,
      files: [{ size: Number(st.size), mtimeNs: st.mtimeNs, ino: st.ino }],
      have,
    });
    await writeFile(`${out}.tdl-resume`, resume);
    const r = await fetchImage(t, torrent, out);
    const started = r.events.find((e) => e['event'] === 'started')!;
    expect(started['present']).toBe(8 * PIECE);
    expect((await runCli(['verify', torrent, '-o', out, '-q'])).code).toBe(0);
  });

  it('tdl seed refuses a short file (exit 5) rather than serving zeros it does not have', async () => {
    const { torrent, out } = await cutImage(24);
    const tdl = spawnTdl(['seed', torrent, '-o', out, '--port', '0', '--no-dht'], fx.onClose);
    const { code } = await exitWithin(tdl.exited, CHILD_MS, 'tdl seed');
    expect(code, tdl.stderr()).toBe(5);
    expect(tdl.stderr()).toContain('incomplete');
  }, 60_000);
});

describe('tdl seed changes nothing before it has found the data complete', () => {
  function nested(): MadeTorrent {
    const files = [
      { path: ['d1', 'a.bin'], data: randomBytesSeeded(40_000, 'seed-a') },
      { path: ['d2', 'e', 'b.bin'], data: randomBytesSeeded(50_000, 'seed-b') },
      { path: ['d3', 'empty'], data: Buffer.alloc(0) },
    ];
    return makeTorrent({ name: 'multi', pieceLength: PIECE, files });
  }

  it('an output that is not there: exit 5, and no folder nor side file is created', async () => {
    const torrent = await fx.writeTorrent(nested());
    const before = (await readdir(fx.dir, { recursive: true })).sort();
    const out = path.join(fx.dir, 'typo', 'out');
    for (const extra of [[], ['--select', '2']]) {
      const r = await runCli(['seed', torrent, '-o', out, '--peer', '127.0.0.1:9', ...extra]);
      expect(r.code, r.stderr).toBe(5);
      expect(r.stderr).toContain(
        extra.length > 0
          ? 'none of the selected files of this torrent is at'
          : 'no file of this torrent is at',
      );
      expect((await readdir(fx.dir, { recursive: true })).sort()).toEqual(before);
    }
  });

  it('complete only through the parts file: incomplete for a seed, laid out by a download', async () => {
    const files = [10_000, 100, 60_000].map((n, i) => ({
      path: i === 1 ? ['sub', 'g2.bin'] : [`g${i + 1}.bin`],
      data: randomBytesSeeded(n, `seed-inner-${i}`),
    }));
    const t = makeTorrent({ name: 'inner', pieceLength: PIECE, files });
    const torrent = await fx.writeTorrent(t);
    const s = await fx.seeder(t, PIECE);
    const out = path.join(fx.dir, 'out');
    const peer = ['--peer', `127.0.0.1:${s.port}`, '--no-listen', '--no-dht'];
    expect((await runCli(['download', torrent, '-o', out, '--select', '3', ...peer])).code).toBe(0);
    expect(await readdir(out)).toEqual(['g3.bin']);
    // Files 1 and 2 lie in piece 0, held by the parts file only: tdl seed writes nothing, so
    // it finds the data incomplete, as verify does; tdl download lays them out, no peer needed.
    const args = ['seed', torrent, '-o', out, '--seed-time', '0.01', '--no-dht', '--port', '0'];
    const r = await runCli([...args, '--peer', '127.0.0.1:9']);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('out.tdl-parts: finish it with tdl download (no network needed)');
    expect(await readdir(out)).toEqual(['g3.bin']);
    expect((await runCli(['verify', torrent, '-o', out, '-q'])).code).toBe(5);
    const none = ['--peer', '127.0.0.1:9', '--no-listen', '--no-dht'];
    expect((await runCli(['download', torrent, '-o', out, ...none])).code).toBe(0);
    for (const f of files)
      expect((await readFile(path.join(out, ...f.path))).equals(f.data)).toBe(true);
    expect((await runCli([...args, '--peer', '127.0.0.1:9'])).code).toBe(0);
  });

  it('complete data: the folder of an empty file is made when the file is', async () => {
    const t = nested();
    const torrent = await fx.writeTorrent(t);
    const s = await fx.seeder(t, PIECE);
    const out = path.join(fx.dir, 'out');
    const peer = ['--peer', `127.0.0.1:${s.port}`, '--no-listen', '--no-dht'];
    expect((await runCli(['download', torrent, '-o', out, ...peer])).code).toBe(0);
    await rm(path.join(out, 'd3'), { recursive: true });
    const args = ['seed', torrent, '-o', out, '--seed-time', '0.01', '--no-dht', '--port', '0'];
    const r = await runCli([...args, '--peer', '127.0.0.1:9']);
    expect(r.code, r.stderr).toBe(0);
    expect((await stat(path.join(out, 'd3', 'empty'))).size).toBe(0);
    expect((await runCli(['verify', torrent, '-o', out, '-q'])).code).toBe(0);
  });
});

describe('tdl seed only reads its data', () => {
  it('a file nobody may open for writing (a running program: ETXTBSY) is served', async () => {
    // Even root cannot open a program that runs for writing: the data of read-only media, or
    // another user's files, as any user can make it here.
    const prog = path.join(fx.dir, 'prog');
    await copyFile('/bin/sleep', prog);
    await chmod(prog, 0o755);
    const running = spawn(prog, ['60'], { stdio: 'ignore', detached: true });
    const gone = new Promise((resolve) => running.once('exit', resolve));
    killWithTest(running, gone, fx.onClose);
    const exe = () => {
      try {
        return readlinkSync(`/proc/${running.pid}/exe`) === prog || undefined;
      } catch {
        return undefined;
      }
    };
    await until(exe, 10_000, 'the program to run');
    const data = await readFile(prog);
    const t = makeTorrent({ name: 'prog', pieceLength: PIECE, files: { data } });
    const torrent = await fx.writeTorrent(t);
    const seedArgs = ['seed', torrent, '-o', prog, '--port', '0', '--no-dht', '--json'];
    const seed = spawnTdl(seedArgs, fx.onClose);
    const port = await seed.port();
    const out = path.join(fx.dir, 'copy');
    const args = ['--peer', `127.0.0.1:${port}`, '--no-listen', '--no-dht'];
    const r = await runCli(['download', torrent, '-o', out, ...args]);
    expect(r.code, `${r.stderr}\n${seed.stderr()}`).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  }, 60_000);

  it('an empty file it cannot create is said, and every piece served', async (ctx) => {
    // Data on media it may not write: the data is complete (an empty file holds none of it),
    // so the empty file tdl would create is left out with a warning.
    const a = randomBytesSeeded(3 * PIECE + 100, 'seed-empty');
    const t = makeTorrent({
      name: 'd',
      pieceLength: PIECE,
      files: [
        { path: ['a.bin'], data: a },
        { path: ['deep', 'empty'], data: Buffer.alloc(0) },
      ],
    });
    const torrent = await fx.writeTorrent(t);
    const dir = path.join(fx.dir, 'd');
    await mkdir(dir);
    await writeFile(path.join(dir, 'a.bin'), a);
    if (!(await makeUnwritable(dir))) ctx.skip();
    const seedArgs = ['seed', torrent, '-o', fx.dir, '--port', '0', '--no-dht', '--json'];
    const seed = spawnTdl(seedArgs, fx.onClose);
    const port = await seed.port();
    const out = path.join(fx.dir, 'copy');
    const args = ['--peer', `127.0.0.1:${port}`, '--no-listen', '--no-dht'];
    const r = await runCli(['download', torrent, '-o', out, ...args]);
    expect(r.code, `${r.stderr}\n${seed.stderr()}`).toBe(0);
    expect((await readFile(path.join(out, 'a.bin'))).equals(a)).toBe(true);
    const warned = seed.events.filter((e) => e['event'] === 'warning').map((e) => e['message']);
    expect(warned).toContainEqual(
      expect.stringMatching(/^cannot create .*deep.*: seeding the data as it is$/),
    );
    expect(await readdir(dir)).toEqual(['a.bin']);
  }, 60_000);
});

/**
 * Make a folder that no entry can be created in, as on read-only media: its mode for a user
 * (root ignores it), the immutable attribute for root. False when neither holds.
 */
async function makeUnwritable(dir: string): Promise<boolean> {
  const probe = path.join(dir, '.probe');
  const writable = async () =>
    writeFile(probe, '').then(
      async () => {
        await rm(probe);
        return true;
      },
      () => false,
    );
  await chmod(dir, 0o555);
  fx.onClose(() => chmod(dir, 0o755).catch(() => {}));
  if (!(await writable())) return true;
  try {
    execFileSync('chattr', ['+i', dir], { stdio: 'ignore' });
  } catch {
    return false;
  }
  fx.onClose(async () => {
    try {
      execFileSync('chattr', ['-i', dir], { stdio: 'ignore' });
    } catch {
      // gone already
    }
  });
  return !(await writable());
}

describe('the side file of a selection (<output>.tdl-parts)', () => {
  /** Where piece `index`'s bytes are in a parts file (after the 28-byte header, records). */
  function recordAt(parts: Buffer, index: number): number {
    for (let pos = 28; pos + 8 <= parts.length;) {
      const i = parts.readUInt32BE(pos);
      const length = parts.readUInt32BE(pos + 4);
      if (i === index) return pos + 8;
      pos += 8 + length;
    }
    throw new Error(`no record of piece ${index}`);
  }

  it('a bad record is forgotten and replaced: verify passes, the next run fetches nothing', async () => {
    const files = [50_000, 100_000, 50_000].map((n, i) => ({
      path: [`f${i + 1}.bin`],
      data: randomBytesSeeded(n, `parts-${i}`),
    }));
    const t = makeTorrent({ name: 'three', pieceLength: PIECE, files });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'three');
    const side = `${out}.tdl-parts`;
    const run = async () => {
      const s = await fx.seeder(t, PIECE);
      const peer = ['--peer', `127.0.0.1:${s.port}`, '--no-listen', '--no-dht', '-q'];
      const r = await runCli(['download', torrent, '-o', out, '--select', '2', ...peer]);
      expect(r.code, r.stderr).toBe(0);
      return s;
    };
    await run();
    // Piece 1 holds the end of file 1 (not selected) and the start of file 2: flip a byte of
    // its copy within file 1's bytes, which only the side file holds.
    const parts = await readFile(side);
    parts[recordAt(parts, 1) + 100]! ^= 0xff;
    await writeFile(side, parts);

    const second = await run();
    expect(second.servedBlocks.get(1) ?? 0).toBeGreaterThan(0);
    const verify = await runCli(['verify', torrent, '-o', out, '--select', '2', '-q']);
    expect(verify.code).toBe(0);
    // The new copy is the one read back: piece 1 is whole, and nothing is fetched again.
    const again = await readFile(side);
    const at = recordAt(again, 1);
    expect(again.subarray(at, at + PIECE).equals(t.pieces[1]!)).toBe(true);
    const third = await run();
    expect(third.served).toBe(0);
  });
});

describe('a FIFO where a bookkeeping file goes', () => {
  /** A FIFO at `p`, made by mkfifo(1) (Node.js has no call for it). */
  const mkfifo = (p: string) => execFileSync('mkfifo', [p]);
  const noPeer = ['--peer', '127.0.0.1:1', '--no-listen', '--no-dht', '--timeout', '3'];

  it('<output>.tdl-resume: ignored, and --timeout 3 ends the download (exit 4)', async () => {
    const t = makeTorrent({
      name: 'out.bin',
      pieceLength: PIECE,
      files: { data: randomBytesSeeded(100_000, 'fifo') },
    });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out.bin');
    mkfifo(`${out}.tdl-resume`);
    const tdl = spawnTdl(['download', torrent, '-o', out, ...noPeer], fx.onClose);
    // The first checkpoint takes its place (seen while the run waits for a peer: a run that
    // fails with no data removes it again).
    await until(() => isFileSync(`${out}.tdl-resume`), CHILD_MS, 'the first checkpoint');
    const { code } = await exitWithin(tdl.exited, CHILD_MS, 'tdl download');
    expect(code, tdl.stderr()).toBe(4);
    expect(tdl.stderr()).toContain('no usable peer within 3s (1 peer address tried;');
  }, 60_000);

  it('beside an existing folder (-o out): out.tdl-resume and out.tdl-parts do not make it ours', async () => {
    const files = [10_000, 20_000].map((n, i) => ({
      path: [`f${i}.bin`],
      data: randomBytesSeeded(n, `fifo-${i}`),
    }));
    const t = makeTorrent({ name: 'two', pieceLength: PIECE, files });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');
    await mkdir(out);
    mkfifo(`${out}.tdl-resume`);
    mkfifo(`${out}.tdl-parts`);
    const tdl = spawnTdl(['download', torrent, '-o', out, ...noPeer], fx.onClose);
    // The torrent's folder went inside `out`, as for any folder that is not its own (its first
    // checkpoint is seen there while the run waits for a peer).
    await until(() => isFileSync(path.join(out, 'two.tdl-resume')), CHILD_MS, 'the checkpoint');
    const { code } = await exitWithin(tdl.exited, CHILD_MS, 'tdl download');
    expect(code, tdl.stderr()).toBe(4);
  }, 60_000);

  it('<output>.tdl-parts: tdl verify and tdl download --select refuse it (exit 6)', async () => {
    const files = [50_000, 100_000].map((n, i) => ({
      path: [`f${i}.bin`],
      data: randomBytesSeeded(n, `fifo-parts-${i}`),
    }));
    const t = makeTorrent({ name: 'two', pieceLength: PIECE, files });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'two');
    mkfifo(`${out}.tdl-parts`);
    const verify = spawnTdl(['verify', torrent, '-o', out, '--select', '2'], fx.onClose);
    const v = await exitWithin(verify.exited, CHILD_MS, 'tdl verify');
    expect(v.code, verify.stderr()).toBe(6);
    expect(verify.stderr()).toContain('not a regular file');
    const args = ['download', torrent, '-o', out, '--select', '2', ...noPeer];
    const download = spawnTdl(args, fx.onClose);
    const d = await exitWithin(download.exited, CHILD_MS, 'tdl download');
    expect(d.code, download.stderr()).toBe(6);
    expect(download.stderr()).toContain('not a regular file');
  }, 90_000);

  it('in place of a file not selected: a boundary piece is hashed without it (no wait)', async () => {
    const files = [50_000, 100_000].map((n, i) => ({
      path: [`f${i}.bin`],
      data: randomBytesSeeded(n, `fifo-unselected-${i}`),
    }));
    const t = makeTorrent({ name: 'two', pieceLength: PIECE, files });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'two');
    await mkdir(out);
    // This torrent's folder (its parts file says so, holding no record), with file 2 begun:
    // piece 1, over both files, is hashed at start, its bytes of file 1 read from f0.bin.
    await writeFile(`${out}.tdl-parts`, Buffer.concat([Buffer.from('TDLPART1'), t.infoHash]));
    await writeFile(path.join(out, 'f1.bin.part'), files[1]!.data.subarray(0, 20_000));
    mkfifo(path.join(out, 'f0.bin'));
    const args = ['download', torrent, '-o', out, '--select', '2', ...noPeer];
    const tdl = spawnTdl(args, fx.onClose);
    const { code } = await exitWithin(tdl.exited, CHILD_MS, 'tdl download');
    expect(code, tdl.stderr()).toBe(4);
  }, 60_000);
});

/** A regular file is at `p` now. */
function isFileSync(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
