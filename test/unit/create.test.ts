import { createHash } from 'node:crypto';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MetainfoError, UsageError } from '../../src/errors.js';
import {
  autoPieceLength,
  checkPieceLength,
  createTorrent,
  parseSize,
} from '../../src/metainfo/create.js';
import {
  CTL_DONE,
  CTL_NEXT,
  CTL_STOP,
  fileStarts,
  hashJob,
  hashJobs,
  type HashPlan,
} from '../../src/metainfo/hash-worker.js';
import {
  CREATE_VALUE_OPTIONS,
  mayUseWorkers,
  WORKER_MIN_BYTES,
} from '../../src/metainfo/hash-prestart.js';
import { run } from '../../src/cli/program.js';
import { parseTorrent, pieceHash } from '../../src/metainfo/torrent.js';
import { MAX_PATH_DEPTH } from '../../src/metainfo/paths.js';
import { tempDir } from '../helpers/cli.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-create-'));
});
afterEach(async () => {
  await cleanup();
});

const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest();

describe('piece length', () => {
  it('auto gives 1,000–2,000 pieces within 16 KiB–16 MiB', () => {
    expect(autoPieceLength(1)).toBe(16384);
    expect(autoPieceLength(2 ** 30)).toBe(2 ** 20);
    for (const total of [40e6, 2 ** 30, 5e9, 30_000_000_000]) {
      const p = autoPieceLength(total);
      const n = Math.ceil(total / p);
      expect(n).toBeGreaterThan(1000);
      expect(n).toBeLessThanOrEqual(2000);
    }
    expect(autoPieceLength(2 ** 50)).toBe(16 * 2 ** 20);
  });

  it('parses sizes and checks explicit ones', () => {
    expect(parseSize('262144')).toBe(262144);
    expect(parseSize('256K')).toBe(262144);
    expect(parseSize('256kib')).toBe(262144);
    expect(parseSize('4M')).toBe(4 * 2 ** 20);
    expect(parseSize('1G')).toBe(2 ** 30);
    // Fractions, as the rate options take them: the piece length check says what is wrong.
    expect(parseSize('1.5M')).toBe(1.5 * 2 ** 20);
    expect(parseSize('0.5m')).toBe(2 ** 19);
    expect(() => checkPieceLength(parseSize('1.5M'))).toThrow(/must be a power of two/);
    expect(() => parseSize('1.5')).toThrow('--piece-length 1.5: not a whole number of bytes');
    for (const bad of ['', 'abc', '1.5.1M', '.5M', '-1', '4T'])
      expect(() => parseSize(bad)).toThrow(UsageError);
    expect(checkPieceLength(16384)).toBe(16384);
    for (const bad of [8192, 20000, 2 ** 27])
      expect(() => checkPieceLength(bad)).toThrow(UsageError);
    // The messages name the option.
    expect(() => parseSize('')).toThrow(
      '--piece-length "": not a size (e.g. 262144, 256K, 4M, or auto)',
    );
    expect(() => checkPieceLength(20000)).toThrow(/^--piece-length 20000: must be a power of two/);
  });
});

/** A HashPlan over `files` (path and size), with its shared arrays. */
function planFor(files: { path: string; size: number }[], pieceLength: number, jobPieces: number) {
  const total = files.reduce((s, f) => s + f.size, 0);
  const pieceCount = Math.ceil(total / pieceLength);
  const plan: HashPlan = {
    paths: files.map((f) => f.path),
    sizes: files.map((f) => f.size),
    pieceLength,
    pieceCount,
    jobPieces,
    jobCount: Math.ceil(pieceCount / jobPieces),
    control: new SharedArrayBuffer(12),
    progress: new SharedArrayBuffer(16),
    hashes: new SharedArrayBuffer(pieceCount * 20),
  };
  return { plan, starts: fileStarts(plan.sizes), hashes: new Uint8Array(plan.hashes) };
}

describe('hashJob', () => {
  it('hashes pieces that span files and empty files, job by job, through any buffer', async () => {
    const a = randomBytesSeeded(50_000, 'a');
    const b = randomBytesSeeded(30_001, 'b');
    await writeFile(path.join(dir, 'a'), a);
    await writeFile(path.join(dir, 'e'), '');
    await writeFile(path.join(dir, 'b'), b);
    const all = Buffer.concat([a, b]);
    const PL = 16384;
    const n = Math.ceil(all.length / PL);
    const files = [
      { path: path.join(dir, 'a'), size: a.length },
      { path: path.join(dir, 'e'), size: 0 },
      { path: path.join(dir, 'b'), size: b.length },
    ];
    // Smaller than a piece (every piece streamed), a few pieces and a cut (whole pieces in one
    // call, the others streamed), larger than everything.
    for (const [jobPieces, bufSize] of [1, 2, 3, n].flatMap((j) =>
      [1001, 2 * PL + 5001, 100_001].map((b) => [j, b] as const),
    )) {
      const { plan, starts, hashes } = planFor(files, PL, jobPieces);
      let reported = 0;
      // Jobs in any order (threads take them as they come).
      for (let job = plan.jobCount - 1; job >= 0; job--) {
        hashJob(
          plan,
          starts,
          job,
          hashes,
          fs,
          crypto,
          Buffer.alloc(bufSize),
          (k) => (reported += k),
        );
      }
      expect(reported).toBe(all.length);
      for (let i = 0; i < n; i++) {
        expect(Buffer.from(hashes.subarray(i * 20, i * 20 + 20))).toEqual(
          sha1(all.subarray(i * PL, (i + 1) * PL)),
        );
      }
    }
  });

  it('stops on a file that is shorter or longer than listed', async () => {
    const f = path.join(dir, 'a');
    await writeFile(f, randomBytesSeeded(5000, 'x'));
    for (const size of [4999, 5001, 1000, 9000]) {
      for (const bufSize of [100, 4999, 5000, 5001, 5002, 20_000]) {
        const { plan, starts, hashes } = planFor([{ path: f, size }], 16384, 1);
        expect(() =>
          hashJob(plan, starts, 0, hashes, fs, crypto, Buffer.alloc(bufSize), () => {}),
        ).toThrow(/changed/);
      }
    }
  });

  it('stops on a file removed (or a folder on its way replaced) once listed', async () => {
    const gone = path.join(dir, 'gone');
    const notDir = path.join(dir, 'file', 'x');
    await writeFile(path.join(dir, 'file'), 'a file where a folder was');
    for (const p of [gone, notDir]) {
      const { plan, starts, hashes } = planFor([{ path: p, size: 10 }], 16384, 1);
      let thrown: unknown;
      try {
        hashJob(plan, starts, 0, hashes, fs, crypto, Buffer.alloc(100), () => {});
      } catch (e) {
        thrown = e;
      }
      expect((thrown as Error).message).toBe(`${p} changed while the torrent was being made`);
      expect((thrown as { code?: string }).code).toBe('ECHANGED');
    }
  });

  it('hashJobs shares the jobs through the counter and says who finished the last', async () => {
    // hashJobs runs in workers from its source text, so it spells these out.
    expect([CTL_NEXT, CTL_DONE, CTL_STOP]).toEqual([0, 1, 2]);
    const data = randomBytesSeeded(200_000, 'j');
    await writeFile(path.join(dir, 'j'), data);
    const { plan, starts, hashes } = planFor(
      [{ path: path.join(dir, 'j'), size: data.length }],
      16384,
      2,
    );
    const buf = Buffer.alloc(5000);
    // The first hasher yields after each job; a second one takes the rest and finishes.
    expect(hashJobs(plan, 0, fs, crypto, buf, starts, () => false, hashJob)).toBe(false);
    expect(hashJobs(plan, 1, fs, crypto, buf, starts, () => true, hashJob)).toBe(true);
    expect(hashJobs(plan, 0, fs, crypto, buf, starts, () => true, hashJob)).toBe(false);
    const progress = new BigInt64Array(plan.progress);
    expect(progress[0]).toBe(32768n);
    expect(progress[1]).toBe(BigInt(data.length - 32768));
    for (let i = 0; i < plan.pieceCount; i++) {
      expect(Buffer.from(hashes.subarray(i * 20, i * 20 + 20))).toEqual(
        sha1(data.subarray(i * 16384, (i + 1) * 16384)),
      );
    }
  });
});

describe('mayUseWorkers (are hashing workers started before the command loads?)', () => {
  it('not for a file createTorrent hashes alone; for anything else or unclear', async () => {
    const small = path.join(dir, 'small.bin');
    await writeFile(small, Buffer.alloc(1000));
    const big = path.join(dir, 'big.bin');
    fs.closeSync(fs.openSync(big, 'w'));
    fs.truncateSync(big, WORKER_MIN_BYTES + 1);
    expect(mayUseWorkers([small, '-o', 'x.torrent'])).toBe(false);
    // The word after an option that takes a value is not the input.
    expect(mayUseWorkers(['-o', big, '--tracker', 'http://t/a', small, '-q'])).toBe(false);
    expect(mayUseWorkers(['--output=x.torrent', '--private', small])).toBe(false);
    expect(mayUseWorkers(['--', small])).toBe(false);
    expect(mayUseWorkers([big, '-o', 'x.torrent'])).toBe(true);
    expect(mayUseWorkers([dir, '-o', 'x.torrent'])).toBe(true);
    expect(mayUseWorkers([path.join(dir, 'missing'), '-o', 'x.torrent'])).toBe(true);
    expect(mayUseWorkers(['-o', small])).toBe(true);
  });

  it('knows every option of tdl create that takes a value, as its --help lists them', async () => {
    let help = '';
    const code = await run(['create', '--help'], {
      stdout: { write: (s: string) => (help += s) },
      stderr: { write: () => {} },
    });
    expect(code).toBe(0);
    const taking = new Set<string>();
    for (const m of help.matchAll(/^ {2}(?:(-\w), )?(--[\w-]+) <[^>]+>/gm)) {
      if (m[1]) taking.add(m[1]);
      taking.add(m[2]!);
    }
    expect(taking.size).toBeGreaterThan(0);
    expect([...CREATE_VALUE_OPTIONS].sort()).toEqual([...taking].sort());
  });
});

describe('createTorrent', () => {
  async function tree(root: string, files: Record<string, Buffer | string>) {
    for (const [rel, data] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
      await writeFile(path.join(root, rel), data);
    }
  }

  it('makes a multi-file torrent, sorted by path bytes, with correct hashes', async () => {
    const root = path.join(dir, 'album');
    const data: Record<string, Buffer> = {
      'b.bin': randomBytesSeeded(40_000, 1),
      'a/z.bin': randomBytesSeeded(70_000, 2),
      'a-b': randomBytesSeeded(1, 3),
      'A.txt': randomBytesSeeded(5, 4),
      'é.txt': randomBytesSeeded(17, 5),
      empty: Buffer.alloc(0),
    };
    await tree(root, data);
    const made = await createTorrent(root, {
      pieceLength: 16384,
      trackers: [['http://t.example/a'], ['udp://u.example:1', 'http://v.example/b']],
      webSeeds: ['https://w.example/'],
      comment: 'c',
      source: 'SRC',
      private: true,
      threads: 2,
    });
    const m = parseTorrent(made.torrent);
    expect(m.infoHashHex).toBe(made.infoHashHex);
    expect(m.files.map((f) => f.path.join('/'))).toEqual([
      'A.txt',
      'a/z.bin',
      'a-b',
      'b.bin',
      'empty',
      'é.txt',
    ]);
    const all = Buffer.concat(m.files.map((f) => data[f.path.join('/')]!));
    expect(m.length).toBe(all.length);
    for (let i = 0; i < m.pieceCount; i++) {
      expect(pieceHash(m, i)).toEqual(sha1(all.subarray(i * 16384, (i + 1) * 16384)));
    }
    expect(m.announceList).toEqual([
      ['http://t.example/a'],
      ['udp://u.example:1', 'http://v.example/b'],
    ]);
    expect(m.urlList).toEqual(['https://w.example/']);
    expect(m.private).toBe(true);
    expect(m.comment).toBe('c');
    expect(made.magnet).toBe(
      `magnet:?xt=urn:btih:${m.infoHashHex}&dn=album&tr=http%3A%2F%2Ft.example%2Fa` +
        '&tr=udp%3A%2F%2Fu.example%3A1&tr=http%3A%2F%2Fv.example%2Fb&ws=https%3A%2F%2Fw.example%2F',
    );
  });

  it('is deterministic: same input, same bytes, whatever the thread count', async () => {
    const root = path.join(dir, 'd');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 60; i++) files[`f${(i * 7919) % 60}/x${i}`] = randomBytesSeeded(i * 997, i);
    await tree(root, files);
    const one = await createTorrent(root, { threads: 1, pieceLength: 16384 });
    const two = await createTorrent(root, { threads: 2, pieceLength: 16384 });
    const three = await createTorrent(root, { threads: 3, pieceLength: 16384 });
    expect(two.torrent).toEqual(one.torrent);
    expect(three.torrent).toEqual(one.torrent);
  });

  it('makes a single-file torrent', async () => {
    const data = randomBytesSeeded(100_000, 'single');
    const f = path.join(dir, 'movie.mkv');
    await writeFile(f, data);
    const made = await createTorrent(f, { creationDate: 1700000000, createdBy: 'me' });
    const m = parseTorrent(made.torrent);
    expect(m.multiFile).toBe(false);
    expect(m.name).toBe('movie.mkv');
    expect(m.pieceLength).toBe(16384);
    expect(m.creationDate).toBe(1700000000);
    expect(m.createdBy).toBe('me');
    expect(pieceHash(m, 6)).toEqual(sha1(data.subarray(6 * 16384)));
  });

  it('marks files their owner may execute with BEP 47 x, as libtorrent does', async () => {
    const root = path.join(dir, 'tools');
    await tree(root, { 'run.sh': '#!/bin/sh\n', 'bin/tool': 'x', 'data.txt': 'd', 'g-only': 'g' });
    fs.chmodSync(path.join(root, 'run.sh'), 0o755);
    fs.chmodSync(path.join(root, 'bin/tool'), 0o700);
    fs.chmodSync(path.join(root, 'g-only'), 0o654); // group may execute, the owner not
    const m = parseTorrent((await createTorrent(root, { pieceLength: 16384 })).torrent);
    expect(m.files.map((f) => [f.path.join('/'), f.executable === true])).toEqual([
      ['bin/tool', true],
      ['data.txt', false],
      ['g-only', false],
      ['run.sh', true],
    ]);
    // The same bytes whatever the thread count (the attribute is in the file list as built).
    const again = await createTorrent(root, { pieceLength: 16384, threads: 3 });
    expect(parseTorrent(again.torrent).infoHashHex).toBe(m.infoHashHex);
    const single = await createTorrent(path.join(root, 'run.sh'), {});
    expect(parseTorrent(single.torrent).files[0]!.executable).toBe(true);
    const plain = await createTorrent(path.join(root, 'data.txt'), {});
    expect(parseTorrent(plain.torrent).files[0]!.executable).toBeUndefined();
  });

  it('says what it skips, keeps links inside as links, refuses links outside', async () => {
    const root = path.join(dir, 'in');
    await tree(root, { 'real.txt': 'abc', 'sub/x': 'x' });
    await mkdir(path.join(root, 'empty-dir'));
    await symlink('real.txt', path.join(root, 'link-in'));
    await symlink('sub', path.join(root, 'link-dir'));
    await symlink('nowhere', path.join(root, 'broken'));
    await symlink('loop-b', path.join(root, 'loop-a'));
    await symlink('loop-a', path.join(root, 'loop-b'));
    // A link to a folder that holds only a link (kept): kept too, a download makes both.
    await mkdir(path.join(root, 'links'));
    await symlink('../real.txt', path.join(root, 'links', 'to-real'));
    await symlink('links', path.join(root, 'to-links'));
    execFileSync('mkfifo', [path.join(root, 'fifo')]);
    await writeFile(path.join(root, Buffer.from('bad\xff', 'latin1').toString('latin1')), 'q');
    const skipped: string[] = [];
    const made = await createTorrent(root, {
      onSkip: (rel, reason) => skipped.push(`${rel}: ${reason}`),
      exclude: path.join(root, 'real.txt.torrent'),
    });
    const m = parseTorrent(made.torrent);
    const byPath = new Map(m.files.map((f) => [f.path.join('/'), f]));
    expect(byPath.get('link-in')).toMatchObject({ length: 0, symlink: ['real.txt'] });
    expect(byPath.get('link-dir')).toMatchObject({ length: 0, symlink: ['sub'] });
    expect(byPath.get('links/to-real')).toMatchObject({ length: 0, symlink: ['real.txt'] });
    expect(byPath.get('to-links')).toMatchObject({ length: 0, symlink: ['links'] });
    expect(byPath.get('real.txt')).toMatchObject({ length: 3 });
    expect(m.files.map((f) => f.path.join('/'))).toContain('badÿ');
    expect(m.length).toBe(3 + 1 + 1);
    expect(skipped.sort()).toEqual(
      expect.arrayContaining([
        'broken: broken symbolic link',
        'loop-a: a loop of symbolic links',
        'loop-b: a loop of symbolic links',
        'empty-dir: empty folder (a torrent holds files only)',
        'fifo: not a regular file',
      ]),
    );
    // The links hold no data: the pieces are those of the files alone.
    expect(pieceHash(m, 0)).toEqual(sha1(Buffer.from('qabcx')));

    const outside = path.join(dir, 'secret');
    await writeFile(outside, 's');
    await symlink(outside, path.join(root, 'leak'));
    await expect(createTorrent(root)).rejects.toThrow(/outside/);
  });

  it('skips names that are not UTF-8 and the output file', async () => {
    const root = path.join(dir, 'in2');
    await mkdir(root);
    await writeFile(path.join(root, 'ok'), 'data');
    const bad = Buffer.concat([Buffer.from(root + '/'), Buffer.from([0x62, 0xff])]);
    fs.writeFileSync(bad, 'x');
    await writeFile(path.join(root, 'out.torrent'), 'old');
    const skipped: string[] = [];
    const made = await createTorrent(root, {
      onSkip: (rel, reason) => skipped.push(`${rel}: ${reason}`),
      exclude: path.join(root, 'out.torrent'),
    });
    expect(parseTorrent(made.torrent).files.map((f) => f.path)).toEqual([['ok']]);
    expect(skipped).toEqual([
      'b%FF: name is not valid UTF-8',
      'out.torrent: the output file itself (it is replaced)',
    ]);
  });

  it('finds the output by identity: an input file is refused, through links too', async () => {
    const root = path.join(dir, 'own');
    await tree(root, { 'movie.mkv': 'frames', 'old.torrent': 'd4:infoe' });
    const via = path.join(dir, 'own-link');
    await symlink(root, via);
    await expect(createTorrent(root, { exclude: path.join(root, 'movie.mkv') })).rejects.toThrow(
      /refusing to write the torrent over movie\.mkv: it is one of the files being shared/,
    );
    await expect(
      createTorrent(path.join(root, 'movie.mkv'), { exclude: path.join(via, 'movie.mkv') }),
    ).rejects.toThrow(/over its own input/);
    // The folder named through a link, the output by its real path: still found.
    const skipped: string[] = [];
    const made = await createTorrent(via, {
      exclude: path.join(root, 'old.torrent'),
      onSkip: (rel, reason) => skipped.push(`${rel}: ${reason}`),
    });
    expect(parseTorrent(made.torrent).files.map((f) => f.path)).toEqual([['movie.mkv']]);
    expect(skipped).toEqual(['old.torrent: the output file itself (it is replaced)']);
    // Another name of the output's file (a hard link) is not replaced when the torrent is
    // written (a new file is renamed into the output's entry): it is an input file like any.
    const hard = path.join(dir, 'hard.torrent');
    fs.linkSync(path.join(root, 'movie.mkv'), hard);
    const linked = await createTorrent(root, { exclude: hard });
    expect(parseTorrent(linked.torrent).files.map((f) => f.path)).toEqual([
      ['movie.mkv'],
      ['old.torrent'],
    ]);
    const single = await createTorrent(path.join(root, 'movie.mkv'), { exclude: hard });
    expect(parseTorrent(single.torrent).name).toBe('movie.mkv');
  });

  it('skips a link out of the folder to the output, as the output itself', async () => {
    const root = path.join(dir, 'outlink');
    await tree(root, { 'data.bin': 'data' });
    const outside = path.join(dir, 'outside.torrent');
    await writeFile(outside, 'an earlier torrent');
    await symlink('../outside.torrent', path.join(root, 'out.torrent'));
    const skipped: string[] = [];
    const made = await createTorrent(root, {
      exclude: outside,
      onSkip: (rel, reason) => skipped.push(`${rel}: ${reason}`),
    });
    expect(parseTorrent(made.torrent).files.map((f) => f.path)).toEqual([['data.bin']]);
    expect(skipped).toEqual(['out.torrent: the output file itself (it is replaced)']);
  });

  it('skips names that are not in NFC form, as it would not find them when seeding', async () => {
    const root = path.join(dir, 'nfd');
    await tree(root, { 'e\u0301.txt': 'one', '\u00e9t\u00e9.txt': 'two' });
    const skipped: string[] = [];
    const made = await createTorrent(root, {
      onSkip: (rel, reason) => skipped.push(`${rel}: ${reason}`),
    });
    expect(parseTorrent(made.torrent).files.map((f) => f.path)).toEqual([['\u00e9t\u00e9.txt']]);
    expect(skipped).toEqual([
      'e\u0301.txt: name is not in Unicode NFC form (rename it to include it)',
    ]);
  });

  it('refuses a torrent it would not load, before reading the data', async () => {
    // A file deeper than the parser takes (MAX_PATH_DEPTH components).
    const root = path.join(dir, 'deep');
    await tree(root, { [`${'d/'.repeat(MAX_PATH_DEPTH)}f`]: Buffer.from('one'), top: 'two' });
    const progress: number[] = [];
    await expect(
      createTorrent(root, { threads: 1, onProgress: (done) => progress.push(done) }),
    ).rejects.toThrow(MetainfoError);
    expect(progress).toEqual([]);
    await expect(createTorrent(root, { threads: 2 })).rejects.toThrow(
      `${root}/${'d/'.repeat(MAX_PATH_DEPTH)}f: its path in the torrent has more than 128 components (129)`,
    );
  });

  it('writes no torrent of a file changed, removed or replaced once its bytes were hashed', async () => {
    const root = path.join(dir, 'changing');
    const a = path.join(root, 'a');
    const later = Date.now() / 1000 + 100;
    const changes: [string, () => void, RegExp][] = [
      ['modified', () => fs.utimesSync(a, later, later), /a was modified while/],
      [
        'truncated',
        () => fs.truncateSync(a, 10),
        /a changed size \(40000 bytes when listed, 10 now\)/,
      ],
      [
        'grown',
        () => fs.appendFileSync(a, 'more'),
        /a changed size \(40000 bytes when listed, 40004/,
      ],
      ['removed', () => fs.rmSync(a), /a was removed while/],
      [
        'replaced',
        () => {
          fs.writeFileSync(path.join(root, 'other'), randomBytesSeeded(40_000, 'ch-a'));
          fs.renameSync(path.join(root, 'other'), a);
        },
        /a was replaced while/,
      ],
      ['made executable', () => fs.chmodSync(a, 0o755), /a was modified while/],
    ];
    for (const [what, change, message] of changes) {
      await fs.promises.rm(root, { recursive: true, force: true });
      await tree(root, { a: randomBytesSeeded(40_000, 'ch-a'), b: randomBytesSeeded(9, 'ch-b') });
      fs.chmodSync(a, 0o644);
      for (const input of [root, a]) {
        if (!fs.existsSync(a)) await writeFile(a, randomBytesSeeded(40_000, 'ch-a'));
        fs.chmodSync(a, 0o644);
        // Every piece hashed (the last progress report), the torrent not yet made.
        let changed = false;
        const made = createTorrent(input, {
          threads: 1,
          onProgress: (done, total) => {
            if (done === total && !changed) {
              changed = true;
              change();
            }
          },
        });
        await expect(made, `${what} (${input})`).rejects.toThrow(UsageError);
        await expect(made).rejects.toThrow(message);
        await expect(made).rejects.toThrow(/no torrent written \(run tdl create again\)$/);
        await fs.promises.rm(a, { force: true });
      }
    }
    // Untouched, the same input makes its torrent.
    await tree(root, { a: randomBytesSeeded(40_000, 'ch-a') });
    await expect(createTorrent(root, { threads: 1 })).resolves.toMatchObject({ fileCount: 2 });
  });

  it('gives the info hash parseTorrent finds, from the real hashes', async () => {
    const root = path.join(dir, 'ih');
    await tree(root, { a: randomBytesSeeded(70_000, 'ih-a'), 'b/c': randomBytesSeeded(9, 'ih-c') });
    for (const threads of [1, 2]) {
      const made = await createTorrent(root, { threads, pieceLength: 16384, comment: 'x' });
      const m = parseTorrent(made.torrent);
      expect(made.infoHash).toEqual(m.infoHash);
      expect(made.infoHashHex).toBe(m.infoHashHex);
      expect(pieceHash(m, 0)).toEqual(sha1(randomBytesSeeded(70_000, 'ih-a').subarray(0, 16384)));
    }
  });

  it('stops on abort, before or while hashing, with the reason of the signal', async () => {
    const root = path.join(dir, 'big');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 8; i++) files[`f${i}`] = randomBytesSeeded(2_000_000, i);
    await tree(root, files);
    const before = new AbortController();
    before.abort(new Error('stop now'));
    await expect(createTorrent(root, { signal: before.signal, threads: 2 })).rejects.toThrow(
      'stop now',
    );
    const during = new AbortController();
    let calls = 0;
    await expect(
      createTorrent(root, {
        signal: during.signal,
        threads: 2,
        pieceLength: 16384,
        onProgress: () => {
          // The first report comes once the workers have their jobs.
          if (++calls === 1) during.abort(new Error('stopped while hashing'));
        },
      }),
    ).rejects.toThrow('stopped while hashing');
  });

  it('stops on abort while listing a folder, within 64 entries', async () => {
    // 300 empty folders, each said as skipped while listing; the abort comes at the first.
    const root = path.join(dir, 'wide');
    await mkdir(root);
    await writeFile(path.join(root, 'data'), 'x');
    for (let i = 0; i < 300; i++) await mkdir(path.join(root, `e${String(i).padStart(3, '0')}`));
    const ctl = new AbortController();
    const skipped: string[] = [];
    await expect(
      createTorrent(root, {
        signal: ctl.signal,
        onSkip: (rel) => {
          skipped.push(rel);
          if (skipped.length === 1) ctl.abort(new Error('stopped while listing'));
        },
      }),
    ).rejects.toThrow('stopped while listing');
    // Seen within the next 64 entries, not after the whole folder.
    expect(skipped.length).toBeLessThanOrEqual(65);
  });

  it('refuses empty input and bad URLs', async () => {
    await mkdir(path.join(dir, 'e'));
    await expect(createTorrent(path.join(dir, 'e'))).rejects.toThrow(UsageError);
    await writeFile(path.join(dir, 'f'), 'x');
    await expect(createTorrent(path.join(dir, 'f'), { trackers: [['ftp://x']] })).rejects.toThrow(
      UsageError,
    );
    await expect(createTorrent(path.join(dir, 'f'), { webSeeds: ['udp://x:1'] })).rejects.toThrow(
      UsageError,
    );
    await expect(
      createTorrent(path.join(dir, 'f'), { trackers: [['udp://tracker.example/announce']] }),
    ).rejects.toThrow(/has no port/);
    await expect(createTorrent(path.join(dir, 'f'), { webSeeds: ['file:///x'] })).rejects.toThrow(
      /only http, https URLs/,
    );
  });

  it('refuses a torrent too large to load before reading the data, naming a piece length that fits', async () => {
    // 64 GiB in 16 KiB pieces: 4,194,304 hashes, 84 MB of torrent. Sparse: nothing on disk.
    const big = path.join(dir, 'big.bin');
    fs.closeSync(fs.openSync(big, 'w'));
    fs.truncateSync(big, 64 * 1024 ** 3);
    const err = await createTorrent(big, { pieceLength: 16384 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(
      /^the torrent would be \d+ bytes, more than the 67108864 that tdl and other clients load: give --piece-length 32K or more \(fewer pieces\)$/,
    );
    // 32 KiB: 2,097,152 hashes, 42 MB.
  });

  it("refuses a torrent's own name not in NFC form, saying to rename it", async () => {
    const nfd = path.join(dir, 'caf\u00e9'.normalize('NFD'));
    await mkdir(nfd);
    await writeFile(path.join(nfd, 'a'), 'data');
    await expect(createTorrent(nfd)).rejects.toThrow(
      `${nfd}: cannot be a torrent's name: name is not in Unicode NFC form (rename it)`,
    );
  });

  it('says what an input link leads to when it leads nowhere (exit 2)', async () => {
    await symlink('lp2', path.join(dir, 'lp1'));
    await symlink('lp1', path.join(dir, 'lp2'));
    await symlink('nothing', path.join(dir, 'broken'));
    const loop = createTorrent(path.join(dir, 'lp1'));
    await expect(loop).rejects.toThrow(UsageError);
    await expect(loop).rejects.toThrow(`${path.join(dir, 'lp1')}: a loop of symbolic links`);
    const broken = createTorrent(path.join(dir, 'broken'));
    await expect(broken).rejects.toThrow(UsageError);
    await expect(broken).rejects.toThrow(
      `${path.join(dir, 'broken')}: a symbolic link to nothing, which does not exist`,
    );
  });
});
