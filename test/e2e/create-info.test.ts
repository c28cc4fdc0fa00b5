/**
 * End to end, in process: `tdl create` and `tdl info` on the torrents real clients make.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import {
  link,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/program.js';
import { InterruptedError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { assertBuilt, interruptAfter, MAIN } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

/** A shell word. */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-e2e-create-'));
});
afterEach(async () => {
  await cleanup();
});

const PL = 16384;

describe('tdl info', () => {
  it('marks padding, leaves it out of totals, shows attributes, seeds and warnings', async () => {
    const t = path.join(dir, 'x.torrent');
    const body = encode({
      info: {
        name: 'top',
        'piece length': PL,
        pieces: Buffer.alloc(40),
        files: [
          { path: ['a.bin'], length: 1000 },
          { path: ['.pad', '15384'], length: 15384, attr: 'p' },
          { path: [Buffer.from('b\xff\x1b[31m', 'latin1')], length: 10, attr: 'x' },
          { path: ['l'], length: 0, attr: 'l', 'symlink path': ['a.bin'] },
        ],
      },
      'url-list': ['http://w.example/', 'gopher://x'],
      httpseeds: 'https://h.example/seed',
    });
    await writeFile(t, Buffer.concat([body, Buffer.from('\n')]));
    const text = await runCli(['info', t]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('size:         1010 B (1010 bytes)');
    expect(text.stdout).toContain('files:        3 (and 1 padding)');
    expect(text.stdout).toMatch(/top\/\.pad\/15384 {2}\[padding\]/);
    expect(text.stdout).toContain('top/b%FF\\x1b[31m  [executable]');
    expect(text.stdout).toMatch(/top\/l {2}\[symlink -> a\.bin\]/);
    // Every file with its number as --select takes it: from 1, padding unnumbered.
    expect(text.stdout).toContain('  1      1000 B  top/a.bin\n       15.0 KiB  top/.pad/15384');
    expect(text.stdout).toMatch(/\n {2}3 {9}0 B {2}top\/l /);
    expect(text.stdout).toContain('web seeds:\n  http://w.example/\n');
    expect(text.stdout).toContain('http seeds:\n  https://h.example/seed\n');
    expect(text.stderr).toBe(
      "tdl: warning: 1 byte(s) after the end of the torrent's top-level dictionary were ignored\n" +
        // Escaped as every name tdl prints is, in the list and in the warning alike.
        'tdl: warning: info.files[2].path[0]: not valid UTF-8, named "b%FF\\x1b[31m"\n' +
        'tdl: warning: url-list[1]: "gopher://x" ignored (not an http or https URL)\n',
    );

    const json = await runCli(['info', t, '--json']);
    expect(json.code).toBe(0);
    const o = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(json.events).toEqual([o]); // one object, checked against the schema
    expect(o['v']).toBe(1);
    expect(o['size']).toBe(1010);
    expect(o['files']).toEqual([
      { index: 1, path: ['a.bin'], length: 1000 },
      { path: ['.pad', '15384'], length: 15384, padding: true },
      { index: 2, path: ['b%FF\x1b[31m'], length: 10, executable: true },
      { index: 3, path: ['l'], length: 0, symlink: ['a.bin'] },
    ]);
    expect(o['webSeeds']).toEqual(['http://w.example/']);
    expect(o['httpSeeds']).toEqual(['https://h.example/seed']);
    expect((o['warnings'] as string[]).length).toBe(3);
    // In the object only: a script reading --json sees no text line beside it.
    expect(json.stderr).toBe('');
  });

  it('shows a creation date no JavaScript date holds as its number; one tracker line per URL', async () => {
    const t = path.join(dir, 'd.torrent');
    const info = { name: 'x', 'piece length': PL, pieces: Buffer.alloc(20), length: 1 };
    // Microseconds since 1970, as some creators write: past the year 275760 in seconds.
    const tiers = [['http://a.example/1', 'http://b.example/2'], ['udp://c.example:3']];
    await writeFile(
      t,
      encode({ 'creation date': 1_733_400_000_000_000, 'announce-list': tiers, info }),
    );
    const text = await runCli(['info', t]);
    expect(text.code).toBe(0);
    expect(text.stderr).toBe('');
    expect(text.stdout).toContain('size:         1 B (1 byte)\n');
    expect(text.stdout).toContain(
      'created:      1733400000000000 (not a date: seconds since 1970)\n' +
        'trackers:\n' +
        '  tier 1: http://a.example/1\n  tier 1: http://b.example/2\n  tier 2: udp://c.example:3\n',
    );
    await writeFile(t, encode({ 'creation date': 1_733_400_000, info }));
    expect((await runCli(['info', t])).stdout).toContain(
      'created:      2024-12-05T12:00:00.000Z\ntrackers:     (none)\n',
    );
  });

  it('tdl verify counts the files, not the padding between them', async () => {
    const a = randomBytesSeeded(1000, 'pad-a');
    const b = randomBytesSeeded(10, 'pad-b');
    const sha1 = (x: Buffer) => createHash('sha1').update(x).digest();
    const t = path.join(dir, 'p.torrent');
    await writeFile(
      t,
      encode({
        info: {
          name: 'top',
          'piece length': PL,
          pieces: Buffer.concat([sha1(Buffer.concat([a, Buffer.alloc(PL - 1000)])), sha1(b)]),
          files: [
            { path: ['a.bin'], length: 1000 },
            { path: ['.pad', '15384'], length: PL - 1000, attr: 'p' },
            { path: ['b.bin'], length: 10 },
          ],
        },
      }),
    );
    await mkdir(path.join(dir, 'top'));
    await writeFile(path.join(dir, 'top', 'a.bin'), a);
    await writeFile(path.join(dir, 'top', 'b.bin'), b);
    const v = await runCli(['verify', t, '-o', path.join(dir, 'top'), '--json']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.events.at(-1)).toMatchObject({ event: 'verified', size: 1010, valid: 1010 });
  });

  it('tdl info shows the v2 info hash of a hybrid torrent', async () => {
    const data = Buffer.from('hello');
    const info = {
      name: 'x.bin',
      'piece length': PL,
      length: data.length,
      pieces: createHash('sha1').update(data).digest(),
      'meta version': 2,
      'file tree': {
        'x.bin': { '': { length: data.length, 'pieces root': Buffer.alloc(32, 7) } },
      },
    };
    const t = path.join(dir, 'hybrid.torrent');
    await writeFile(t, encode({ info }));
    const v2 = createHash('sha256').update(encode(info)).digest('hex');
    const text = await runCli(['info', t]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`(v1; hybrid v1+v2 torrent)\ninfo hash v2: ${v2}\n`);
    const json = await runCli(['info', t, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ hybrid: true, infoHashV2: v2 });
    // A v1 torrent has none.
    const v1 = path.join(dir, 'v1.torrent');
    await writeFile(
      v1,
      encode({ info: { ...info, 'meta version': undefined, 'file tree': undefined } }),
    );
    const plain = await runCli(['info', v1, '--json']);
    expect(JSON.parse(plain.stdout)).not.toHaveProperty('infoHashV2');
  });

  it('tdl verify never rounds an incomplete torrent up to 100%', async () => {
    // A hybrid-style layout: the last piece holds 1 byte of b.bin and padding. One bad byte in
    // 32,769 is 99.997% valid: shown as 99.9%, never as 100.0% beside "corrupt: 1 piece".
    const a = randomBytesSeeded(2 * PL, 'round-a');
    const made = makeTorrent({
      name: 'top',
      pieceLength: PL,
      files: [
        { path: ['a.bin'], data: a },
        { path: ['b.bin'], data: Buffer.from('b') },
      ],
    });
    const t = path.join(dir, 'r.torrent');
    await writeFile(t, made.torrent);
    await mkdir(path.join(dir, 'top'));
    await writeFile(path.join(dir, 'top', 'a.bin'), a);
    await writeFile(path.join(dir, 'top', 'b.bin'), 'X');
    const text = await runCli(['verify', t, '-o', path.join(dir, 'top')]);
    expect(text.code).toBe(5);
    expect(text.stdout).toMatch(/^valid: .* \(99\.9%\), 2 of 3 pieces$/m);
    const json = await runCli(['verify', t, '-o', path.join(dir, 'top'), '--json']);
    expect(json.events.at(-1)).toMatchObject({ valid: 2 * PL, size: 2 * PL + 1, percent: 99.9 });
  });

  it('tdl verify reads only what is on disk: a file cut at a piece boundary', async () => {
    // Cut exactly where the last piece begins (an interrupted download): that piece has no byte
    // on disk, is missing, and is neither read nor counted in what the check reads.
    const data = randomBytesSeeded(4 * PL + 1000, 'cut-at-piece');
    const made = makeTorrent({ name: 'cut.bin', pieceLength: PL, files: { data } });
    const t = path.join(dir, 'cut.torrent');
    await writeFile(t, made.torrent);
    await writeFile(path.join(dir, 'cut.bin.part'), data.subarray(0, 4 * PL));
    const r = await runCli(['verify', t, '-o', path.join(dir, 'cut.bin'), '--json']);
    expect(r.code).toBe(5);
    const progress = r.events.filter((e) => e.event === 'progress');
    expect(progress.at(-1)).toMatchObject({ checked: 4 * PL, total: 4 * PL, valid: 4 * PL });
    expect(r.events.at(-1)).toMatchObject({
      event: 'verified',
      readBytes: 4 * PL,
      valid: 4 * PL,
      piecesValid: 4,
      piecesMissing: 1,
      piecesCorrupt: 0,
    });
  });

  it('exits 3 with a clear reason for v2-only torrents and bad hybrids', async () => {
    const v2 = path.join(dir, 'v2.torrent');
    await writeFile(
      v2,
      encode({
        info: {
          name: 'x',
          'piece length': PL,
          'meta version': 2,
          'file tree': { x: { '': { length: 1 } } },
        },
      }),
    );
    const r = await runCli(['info', v2]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`tdl: ${v2}: info: BitTorrent v2-only torrents are not supported yet\n`);

    const bad = path.join(dir, 'hy.torrent');
    await writeFile(
      bad,
      encode({
        info: {
          name: 'x',
          'piece length': PL,
          length: 5,
          pieces: Buffer.alloc(20),
          'meta version': 2,
          'file tree': { y: { '': { length: 5 } } },
        },
      }),
    );
    const h = await runCli(['info', bad]);
    expect(h.code).toBe(3);
    expect(h.stderr).toMatch(/info\.file tree: does not match the v1 file list/);

    const link = path.join(dir, 'link.torrent');
    await writeFile(
      link,
      encode({
        info: {
          name: 'x',
          'piece length': PL,
          pieces: Buffer.alloc(20),
          files: [
            { path: ['a'], length: 1 },
            { path: ['l'], length: 0, attr: 'l', 'symlink path': ['..', '..', 'etc'] },
          ],
        },
      }),
    );
    const l = await runCli(['info', link]);
    expect(l.code).toBe(3);
    expect(l.stderr).toBe(
      `tdl: ${link}: info.files[1].symlink path: the symbolic link "l" points to "../../etc": ` +
        `a link's target is a path inside the torrent's folder (BEP 47), without "..", ` +
        `and tdl makes no link that could lead out of it\n`,
    );
  });

  it('escapes control characters in a symlink target, as in names', async () => {
    const t = path.join(dir, 'esc.torrent');
    await writeFile(
      t,
      encode({
        info: {
          name: 'x',
          'piece length': PL,
          pieces: Buffer.alloc(20),
          files: [
            { path: ['a\x1b[2Jb'], length: 1 },
            { path: ['l'], length: 0, attr: 'l', 'symlink path': ['a\x1b[2Jb'] },
          ],
        },
      }),
    );
    const r = await runCli(['info', t]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('\x1b');
    expect(r.stdout).toMatch(/x\/l {2}\[symlink -> a\\x1b\[2Jb\]/);
  });

  it('a listing smaller than a pipe holds goes out in one write: `| head -1` leaves it exit 0', async () => {
    // In several writes, the reader could be gone before the second: exit 141 or 0 by timing.
    assertBuilt();
    const data = randomBytesSeeded(100_000, 'info-head');
    const t = makeTorrent({
      name: 'h',
      pieceLength: PL,
      files: [
        { path: ['a.bin'], data },
        { path: ['b.bin'], data },
      ],
    });
    const tp = path.join(dir, 'h.torrent');
    await writeFile(tp, t.torrent);
    const tdl = `${q(process.execPath)} ${q(MAIN)}`;
    for (const args of ['', '--json']) {
      const r = spawnSync(
        'bash',
        [
          '-c',
          `for i in 1 2 3; do ${tdl} info ${q(tp)} ${args} | head -c 5; echo " \${PIPESTATUS[0]}"; done`,
        ],
        { encoding: 'utf8', timeout: 30_000 },
      );
      expect(
        r.stdout
          .split('\n')
          .filter(Boolean)
          .map((l) => l.slice(-2)),
      ).toEqual([' 0', ' 0', ' 0']);
    }
  });
});

describe('tdl create', () => {
  it('writes the torrent, prints the info hash and magnet; --no-date is byte-identical', async () => {
    const src = path.join(dir, 'src');
    await mkdir(path.join(src, 'sub'), { recursive: true });
    await writeFile(path.join(src, 'a.bin'), randomBytesSeeded(100_000, 1));
    await writeFile(path.join(src, 'sub', 'b.bin'), randomBytesSeeded(3, 2));
    await mkdir(path.join(src, 'nothing'));
    const args = (out: string) => [
      'create',
      src,
      '-o',
      out,
      '--tracker',
      'http://a.example/ann,http://b.example/ann',
      '--tracker',
      'udp://c.example:6969',
      '--web-seed',
      'https://w.example/',
      '--piece-length',
      '16K',
      '--private',
      '--comment',
      'hi',
      '--source',
      'SRC',
      '--created-by',
      'me',
      '--no-date',
    ];
    const r1 = await runCli(args(path.join(dir, '1.torrent')));
    expect(r1.code).toBe(0);
    expect(r1.stderr).toBe(
      'tdl: warning: skipped nothing: empty folder (a torrent holds files only)\n',
    );
    const r2 = await runCli(args(path.join(dir, '2.torrent')));
    const t1 = await readFile(path.join(dir, '1.torrent'));
    // -q: nothing but errors, the skip's warning included; the same torrent.
    const r3 = await runCli([...args(path.join(dir, '3.torrent')), '-q']);
    expect([r3.code, r3.stdout, r3.stderr]).toEqual([0, '', '']);
    expect((await readFile(path.join(dir, '3.torrent'))).equals(t1)).toBe(true);
    expect((await readFile(path.join(dir, '2.torrent'))).equals(t1)).toBe(true);
    const m = parseTorrent(t1);
    expect(r1.stdout).toBe(
      'files:     2 (97.7 KiB), 7 pieces of 16.0 KiB\n' +
        `info hash: ${m.infoHashHex}\n` +
        `magnet:    magnet:?xt=urn:btih:${m.infoHashHex}&dn=src` +
        '&tr=http%3A%2F%2Fa.example%2Fann&tr=http%3A%2F%2Fb.example%2Fann&tr=udp%3A%2F%2Fc.example%3A6969' +
        '&ws=https%3A%2F%2Fw.example%2F\n',
    );
    expect(r2.stdout).toBe(r1.stdout);
    expect(m.announceList).toEqual([
      ['http://a.example/ann', 'http://b.example/ann'],
      ['udp://c.example:6969'],
    ]);
    expect(m.private).toBe(true);
    expect(m.source).toBe('SRC');
    expect(m.comment).toBe('hi');
    expect(m.createdBy).toBe('me');
    expect(m.creationDate).toBeUndefined();
    expect(m.urlList).toEqual(['https://w.example/']);
    // tdl info shows the source, part of the info hash.
    const info = await runCli(['info', path.join(dir, '1.torrent')]);
    expect(info.stdout).toContain('private:      yes\nsource:       SRC\n');
    const json = await runCli(['info', path.join(dir, '1.torrent'), '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ private: true, source: 'SRC' });
  });

  it('-o - writes the torrent to stdout and the rest to stderr', async () => {
    const f = path.join(dir, 'f.txt');
    await writeFile(f, 'hello');
    const chunks: Buffer[] = [];
    let stderr = '';
    const { run } = await import('../../src/cli/program.js');
    const code = await run(['create', f, '-o', '-'], {
      stdout: {
        write: (s: string | Uint8Array, cb?: () => void) => {
          chunks.push(Buffer.from(s));
          cb?.();
          return true;
        },
      },
      stderr: { write: (s: string) => (stderr += s), isTTY: false },
    });
    expect(code).toBe(0);
    const m = parseTorrent(Buffer.concat(chunks));
    expect(m.name).toBe('f.txt');
    expect(m.creationDate).toBeGreaterThan(1_700_000_000);
    expect(stderr).toContain(`info hash: ${m.infoHashHex}`);
    expect(stderr).toContain('file:      1 (5 B), 1 piece of 16.0 KiB\ninfo hash: ');
  });

  it('never writes over its input; writes into a pipe or device; waits for stdout', async () => {
    const f = path.join(dir, 'f.bin');
    await writeFile(f, 'precious');
    const same = await runCli(['create', f, '-o', f]);
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/refusing to write the torrent over its own input/);
    const d = path.join(dir, 'd');
    await mkdir(d);
    await writeFile(path.join(d, 'movie.mkv'), 'frames');
    const inside = await runCli(['create', d, '-o', path.join(d, 'movie.mkv')]);
    expect(inside.code).toBe(2);
    expect(inside.stderr).toMatch(/over movie\.mkv: it is one of the files being shared/);
    expect(await readFile(f, 'utf8')).toBe('precious');
    expect(await readFile(path.join(d, 'movie.mkv'), 'utf8')).toBe('frames');
    const folder = await runCli(['create', f, '-o', d]);
    expect(folder.code).toBe(2);
    expect(folder.stderr).toMatch(/is a folder/);
    // A trailing slash names a folder, there or not: no file is written in its place.
    for (const named of [path.join(dir, 'new-folder') + '/', f + '/']) {
      const slash = await runCli(['create', f, '-o', named]);
      expect(slash.code, slash.stderr).toBe(2);
      expect(slash.stderr).toBe(`tdl: -o ${named} names a folder: name the .torrent file\n`);
    }
    expect(existsSync(path.join(dir, 'new-folder'))).toBe(false);
    expect(await readFile(f, 'utf8')).toBe('precious');
    const noDir = await runCli(['create', f, '-o', path.join(dir, 'no', 'x.torrent')]);
    expect(noDir.code).toBe(2);
    expect(noDir.stderr).toMatch(/no folder/);

    // The real program through a shell: a device is written to, never replaced by a file, and a
    // failed write to stdout fails the run.
    assertBuilt();
    const sh = (cmd: string) =>
      spawnSync('bash', ['-c', cmd], { encoding: 'utf8', timeout: 30_000 });
    const tdl = `${q(process.execPath)} ${q(MAIN)}`;
    const full = sh(`${tdl} create ${q(f)} -o /dev/full`);
    expect(full.status, full.stderr).toBe(6);
    expect(full.stderr).toMatch(/cannot write \/dev\/full: no space left on device/);
    expect(statSync('/dev/full').isCharacterDevice()).toBe(true);
    const piped = sh(`${tdl} create ${q(f)} -o - --no-date > /dev/full`);
    expect(piped.status, piped.stderr).toBe(6);
    expect(piped.stderr).toMatch(/cannot write to standard output: no space left on device/);
    // The summary, and tdl verify's report, are stdout's last write: its failure is said, not
    // lost at exit (it used to exit 0).
    const summary = sh(`${tdl} create ${q(f)} -o ${q(dir)}/s.torrent > /dev/full`);
    expect(summary.status, summary.stderr).toBe(6);
    expect(summary.stderr).toBe('tdl: cannot write to standard output: no space left on device\n');
    const report = sh(`${tdl} verify ${q(dir)}/s.torrent -o ${q(f)} > /dev/full`);
    expect(report.status, report.stderr).toBe(6);
    expect(report.stderr).toBe('tdl: cannot write to standard output: no space left on device\n');
    // A stdout open for reading only: a write error (exit 6), not a reader gone (141, silent).
    for (const cmd of [`info ${q(dir)}/s.torrent`, `create ${q(f)} -o - --no-date`]) {
      const ro = sh(`${tdl} ${cmd} 1</dev/null`);
      expect(ro.status, `${cmd}: ${ro.stderr}`).toBe(6);
      expect(ro.stderr).toBe('tdl: cannot write to standard output: bad file descriptor\n');
    }
    const sub = sh(
      `${tdl} create ${q(f)} -q --no-date -o >(sha1sum > ${q(dir)}/sum); wait; sleep 0.2`,
    );
    expect(sub.status, sub.stderr).toBe(0);
    const direct = sh(`${tdl} create ${q(f)} -q --no-date -o - | sha1sum`);
    expect(await readFile(path.join(dir, 'sum'), 'utf8')).toBe(direct.stdout);
    // -o /dev/stdout into a pipe is -o -: the torrent alone there, the summary on stderr (it
    // used to follow the torrent into the pipe).
    const named = sh(`${tdl} create ${q(f)} --no-date -o /dev/stdout | sha1sum`);
    expect(named.status, named.stderr).toBe(0);
    expect(named.stdout).toBe(direct.stdout);
    expect(named.stderr).toMatch(/^file: {6}1 \(8 B\)/);
    // -o - into a file inside the folder: that file is being written, never shared.
    const into = sh(`${tdl} create ${q(d)} -o - --no-date > ${q(d)}/out.torrent`);
    expect(into.status, into.stderr).toBe(0);
    expect(into.stderr).toContain(
      'tdl: warning: skipped out.torrent: stdout, where the torrent is written',
    );
    const inFolder = parseTorrent(await readFile(path.join(d, 'out.torrent')));
    expect(inFolder.files.map((x) => x.path.join('/'))).toEqual(['movie.mkv']);
    // A reader that leaves before the end (a torrent larger than a pipe holds): not a success.
    const big = path.join(dir, 'big.bin');
    spawnSync('truncate', ['-s', '64M', big]);
    const left = sh(
      `set -o pipefail; ${tdl} create ${q(big)} --piece-length 16K -o /dev/stdout | head -c 1 > /dev/null`,
    );
    expect(left.status, left.stderr).toBe(141);
    const fifo = path.join(dir, 'left.fifo');
    spawnSync('mkfifo', [fifo]);
    const viaFifo = sh(
      `(head -c 1000 < ${q(fifo)} > /dev/null) & ${tdl} create ${q(big)} --piece-length 16K -o ${q(fifo)}; r=$?; wait; exit $r`,
    );
    expect(viaFifo.status, viaFifo.stderr).toBe(6);
    expect(viaFifo.stderr).toContain('broken pipe');
  }, 60_000);

  it('a named pipe nobody reads as -o or --save-torrent: Ctrl-C ends the wait (exit 130)', async () => {
    assertBuilt();
    const f = path.join(dir, 'f.bin');
    await writeFile(f, 'data');
    const tp = path.join(dir, 'f.torrent');
    expect((await runCli(['create', f, '-o', tp, '-q', '--no-date'])).code).toBe(0);
    const fifo = path.join(dir, 'pipe');
    spawnSync('mkfifo', [fifo]);
    for (const args of [
      ['create', f, '-o', fifo],
      ['info', tp, '--save-torrent', fifo],
    ]) {
      // A blocking open of the pipe held a pool thread that Node joins at exit: tdl hung for
      // good, whatever signal came.
      const { code, stderr } = await interruptAfter(args);
      expect(code, `${args[0]}: ${stderr}`).toBe(130);
      expect(stderr).toBe('tdl: interrupted by SIGINT\n');
    }
    // A reader that comes later gets the torrent, as with a shell's `>`.
    const read = new Promise<Buffer>((resolve) => {
      setTimeout(() => void readFile(fifo).then(resolve), 300);
    });
    expect((await runCli(['create', f, '-o', fifo, '-q', '--no-date'])).code).toBe(0);
    expect(await read).toEqual(await readFile(tp));
  }, 40_000);

  it('a current folder whose path is not UTF-8: relative paths are refused with the reason', async () => {
    assertBuilt();
    const f = path.join(dir, 'f.bin');
    await writeFile(f, 'data');
    const tp = path.join(dir, 'f.torrent');
    expect((await runCli(['create', f, '-o', tp, '-q'])).code).toBe(0);
    mkdirSync(Buffer.concat([Buffer.from(`${dir}/dir`), Buffer.from([0xff])]));
    writeFileSync(Buffer.concat([Buffer.from(`${dir}/dir`), Buffer.from([0xff, 0x2f, 0x78])]), 'x');
    const tdl = `cd ${q(dir)}/dir$'\\xff' && ${q(process.execPath)} ${q(MAIN)}`;
    const why = `the current folder's path is not valid UTF-8 (${dir}/dir%FF), so tdl cannot name what is in it`;
    for (const [cmd, shown] of [
      [`create x -o ${q(dir)}/x.torrent`, 'x: '],
      [`create ${q(f)} -o out.torrent`, 'out.torrent: '],
      // A colon makes no URL of a path.
      [`create ${q(f)} -o 'Album: Live.torrent'`, 'Album: Live.torrent: '],
      [`download ${q(tp)} -o a:out --peer 127.0.0.1:9 --no-dht --port 0`, 'a:out: '],
      [`download ${q(tp)} --peer 127.0.0.1:9 --no-dht --port 0`, ''],
    ] as const) {
      const r = spawnSync('bash', ['-c', `${tdl} ${cmd}`], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, `${cmd}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`tdl: ${shown}${why}`);
    }
    // Absolute paths work from there, and a relative file that is only read (a .torrent).
    for (const cmd of [`info ${q(tp)}`, `info ../f.torrent`]) {
      const ok = spawnSync('bash', ['-c', `${tdl} ${cmd}`], { encoding: 'utf8' });
      expect(ok.status, `${cmd}: ${ok.stderr}`).toBe(0);
    }
  });

  it('--save-torrent - is refused: - is stdout everywhere else, never a file named -', async () => {
    assertBuilt();
    const f = path.join(dir, 'f.bin');
    await writeFile(f, 'data');
    const tp = path.join(dir, 'f.torrent');
    expect((await runCli(['create', f, '-o', tp, '-q'])).code).toBe(0);
    const tdl = `cd ${q(dir)} && ${q(process.execPath)} ${q(MAIN)}`;
    for (const cmd of [
      `info f.torrent --save-torrent -`,
      `download f.torrent -o f.bin --save-torrent - --peer 127.0.0.1:9 --no-dht --port 0`,
    ]) {
      const r = spawnSync('bash', ['-c', `${tdl} ${cmd}`], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, cmd).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        'tdl: --save-torrent - cannot write to stdout: name a file (./- for a file named -)\n',
      );
      expect(statSync(path.join(dir, '-'), { throwIfNoEntry: false })).toBeUndefined();
    }
    // Nor by another name: /dev/stdout carries the stream, the events or the text (a file
    // renamed over it took the place of the data, exit 0).
    for (const cmd of [
      `info f.torrent --save-torrent /dev/stdout | cat`,
      `download f.torrent -o - --save-torrent /dev/stdout --peer 127.0.0.1:9 --no-dht > s.bin`,
    ]) {
      const r = spawnSync('bash', ['-c', `set -o pipefail; ${tdl} ${cmd}`], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.status, `${cmd}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toBe(
        "tdl: --save-torrent /dev/stdout is this run's stdout, which carries its output: name a file\n",
      );
    }
    // --json into the very file the download writes: refused before anything is written, the
    // error event included (appended to complete data, it would damage it).
    await writeFile(path.join(dir, 'g.bin'), 'data');
    const into = spawnSync(
      'bash',
      ['-c', `${tdl} download f.torrent -o g.bin --json --peer 127.0.0.1:9 --no-dht >> g.bin`],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(into.status, into.stderr).toBe(2);
    expect(into.stderr).toContain(
      `stdout is ${path.join(dir, 'g.bin')}, which the download writes`,
    );
    expect(await readFile(path.join(dir, 'g.bin'), 'utf8')).toBe('data');
    // Nor under another name for it: through a link to a folder on the way, or a hard link.
    await mkdir(path.join(dir, 'real'));
    await symlink('real', path.join(dir, 'link'));
    await mkdir(path.join(dir, 'hl'));
    await writeFile(path.join(dir, 'hl', 'g.bin.part'), 'X');
    await link(path.join(dir, 'hl', 'g.bin.part'), path.join(dir, 'hl', 'log'));
    for (const [o, into, also] of [
      ['link/g.bin', 'real/g.bin.part', ''],
      ['hl/g.bin', 'hl/log', ` (the same file as ${path.join(dir, 'hl', 'g.bin.part')})`],
    ]) {
      const before = await readFile(path.join(dir, into!), 'utf8').catch(() => '');
      const r = spawnSync(
        'bash',
        ['-c', `${tdl} download f.torrent -o ${o} --json --peer 127.0.0.1:9 --no-dht >> ${into}`],
        { encoding: 'utf8', timeout: 30_000 },
      );
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(
        `stdout is ${path.join(dir, into!)}${also}, which the download writes`,
      );
      expect(await readFile(path.join(dir, into!), 'utf8')).toBe(before);
    }
    // A device shared with stdout is no stream of tdl's: the summary stays on stdout.
    const dev = spawnSync(
      'bash',
      ['-c', `${tdl} create f.bin -o /dev/null --no-date > /dev/null`],
      {
        encoding: 'utf8',
      },
    );
    expect(dev.status, dev.stderr).toBe(0);
    expect(dev.stderr).toBe('');
  });

  it('keeps links inside the folder as links: the folder itself verifies and seeds', async () => {
    const d = path.join(dir, 'linked');
    await mkdir(path.join(d, 'sub'), { recursive: true });
    await writeFile(path.join(d, 'a.txt'), 'hello');
    await writeFile(path.join(d, 'sub', 'b'), 'x');
    await symlink('a.txt', path.join(d, 'to-a'));
    await symlink('sub', path.join(d, 'to-sub'));
    // Other ways to the same file: the torrent holds the target each resolves to, and the
    // folder keeps its own links, which seed takes as the torrent's.
    await symlink('./a.txt', path.join(d, 'dot'));
    await symlink(path.join(d, 'a.txt'), path.join(d, 'abs'));
    await symlink('to-a', path.join(d, 'chain'));
    await symlink('../linked/sub/b', path.join(d, 'up'));
    const t = path.join(dir, 'linked.torrent');
    expect((await runCli(['create', d, '-o', t, '-q'])).code).toBe(0);
    const m = parseTorrent(await readFile(t));
    expect(m.files.filter((x) => x.symlink).map((x) => [x.path, x.symlink])).toEqual([
      [['abs'], ['a.txt']],
      [['chain'], ['a.txt']],
      [['dot'], ['a.txt']],
      [['to-a'], ['a.txt']],
      [['to-sub'], ['sub']],
      [['up'], ['sub', 'b']],
    ]);
    const v = await runCli(['verify', t, '-o', dir]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/result: +complete/);
    const none = ['--peer', '127.0.0.1:9', '--no-dht', '--no-listen'];
    const s = await runCli(['seed', t, '-o', dir, ...none, '--seed-time', '0.001']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toBe('tdl: seeding linked accepting no connection (Ctrl-C to stop)\n');
    expect(await readlink(path.join(d, 'dot'))).toBe('./a.txt'); // left as the user made it
  });

  it('verify and seed name a missing file that is there in another Unicode form (NFD)', async () => {
    const d = path.join(dir, 'forms');
    await mkdir(d);
    const nfc = 'caf\u00e9.txt';
    await writeFile(path.join(d, nfc), 'data');
    const t = path.join(dir, 'forms.torrent');
    expect((await runCli(['create', d, '-o', t, '-q'])).code).toBe(0);
    // As another client writes the names of a torrent made in NFD.
    await rename(path.join(d, nfc), path.join(d, nfc.normalize('NFD')));
    const v = await runCli(['verify', t, '-o', `${dir}/`]);
    expect(v.code, v.stderr).toBe(5);
    expect(v.stdout).toContain(
      `  missing     forms/${nfc} (${nfc.normalize('NFD')} is there: the same name in another ` +
        'Unicode form; tdl names files in NFC, rename it)\n',
    );
    // The torrent's folder not there at all: -o most likely names another place.
    expect(v.stdout).not.toContain('note:');
    const elsewhere = await runCli(['verify', t, '-o', path.join(dir, 'typo')]);
    expect(elsewhere.code, elsewhere.stderr).toBe(5);
    expect(elsewhere.stdout).toContain(
      `\nnote:     ${path.join(dir, 'typo')} does not exist: -o names where the data is, as ` +
        'given to tdl download\nresult:   incomplete',
    );
    // seed says so too, rather than only sending the user to tdl download (a second copy).
    const s = await runCli(['seed', t, '-o', `${dir}/`, '--port', '0', '--no-dht']);
    expect(s.code, s.stderr).toBe(5);
    expect(s.stderr).toContain(
      `(${nfc.normalize('NFD')} is there for ${path.join(d, nfc)}: the same name in another ` +
        'Unicode form; tdl names files in NFC, rename it)',
    );
  });

  it('verify and seed say when a missing file is there under its raw name that is not UTF-8', async () => {
    // As mktorrent makes a torrent of a folder with a Latin-1 name: the bytes as they are.
    const raw = Buffer.from('caf\xe9.bin', 'latin1');
    const data = randomBytesSeeded(20_000, 'latin1');
    const d = path.join(dir, 'old');
    await mkdir(d);
    writeFileSync(Buffer.concat([Buffer.from(`${d}/`), raw]), data);
    const t = path.join(dir, 'old.torrent');
    const pieces = createHash('sha1').update(data).digest();
    await writeFile(
      t,
      encode({
        info: {
          name: 'old',
          'piece length': 32768,
          pieces,
          files: [{ length: 20_000, path: [raw] }],
        },
      }),
    );
    const v = await runCli(['verify', t, '-o', `${dir}/`]);
    expect(v.code, v.stderr).toBe(5);
    expect(v.stdout).toContain(
      "  missing     old/caf%E9.bin (it is there under its name's own bytes, which are not UTF-8: " +
        'tdl names such a file with %XX for each of those bytes, as tdl info shows; rename it)\n',
    );
    const s = await runCli(['seed', t, '-o', `${dir}/`, '--port', '0', '--no-dht']);
    expect(s.code, s.stderr).toBe(5);
    expect(s.stderr).toContain(`(${path.join(d, 'caf%E9.bin')}: it is there under its name's own`);
    // Renamed as tdl names it, it verifies.
    await rename(Buffer.concat([Buffer.from(`${d}/`), raw]), path.join(d, 'caf%E9.bin'));
    expect((await runCli(['verify', t, '-o', `${dir}/`, '-q'])).code).toBe(0);
  });

  it('verify reports a folder or a FIFO in the place of a file, and checks the rest', async () => {
    const d = path.join(dir, 'kinds');
    await mkdir(d);
    for (const n of ['a', 'b', 'c']) await writeFile(path.join(d, n), randomBytesSeeded(40_000, n));
    const t = path.join(dir, 'kinds.torrent');
    expect((await runCli(['create', d, '-o', t, '-q'])).code).toBe(0);
    await rm(path.join(d, 'c'));
    await mkdir(path.join(d, 'c'));
    const v = await runCli(['verify', t, '-o', d]);
    expect(v.code, v.stderr).toBe(5);
    expect(v.stdout).toContain(
      '  missing     kinds/c (not a file: a folder, FIFO or device is there)\n',
    );
    const json = await runCli(['verify', t, '-o', d, '--json']);
    const files = json.events.at(-1)!['files'];
    expect(files).toContainEqual(
      expect.objectContaining({ path: 'kinds/c', state: 'missing', notAFile: true }),
    );
    // The rest was checked.
    expect(files).toContainEqual(expect.objectContaining({ path: 'kinds/a', state: 'complete' }));
    await rm(path.join(d, 'c'), { recursive: true });
    spawnSync('mkfifo', [path.join(d, 'c')]);
    const fifo = await runCli(['verify', t, '-o', d, '-q']);
    expect(fifo.code).toBe(5);
    // A download still refuses to put a file there (exit 6), naming it.
    await rm(path.join(d, 'c'));
    await mkdir(path.join(d, 'c'));
    const dl = await runCli(['download', t, '-o', dir, '--peer', '127.0.0.1:9', '--no-dht']);
    expect(dl.code).toBe(6);
    expect(dl.stderr).toContain(`${path.join(d, 'c')} exists and is a directory`);
  });

  it('verify and seed report a file or a FIFO in the place of a folder, and check the rest', async () => {
    const d = path.join(dir, 'nest');
    await mkdir(path.join(d, 'sub'), { recursive: true });
    for (const n of ['a', 'b']) await writeFile(path.join(d, n), randomBytesSeeded(40_000, n));
    await writeFile(path.join(d, 'sub', 's'), randomBytesSeeded(30_000, 's'));
    const t = path.join(dir, 'nest.torrent');
    expect((await runCli(['create', d, '-o', t, '-q'])).code).toBe(0);
    await rm(path.join(d, 'sub'), { recursive: true });
    for (const make of ['file', 'fifo']) {
      if (make === 'file') await writeFile(path.join(d, 'sub'), 'x');
      else spawnSync('mkfifo', [path.join(d, 'sub')]);
      // The folder is the torrent's (its other files fit), not a place for a new `nest` in it.
      const v = await runCli(['verify', t, '-o', d, '--json']);
      expect(v.code, v.stderr).toBe(5);
      const files = v.events.at(-1)!['files'];
      expect(files).toContainEqual(expect.objectContaining({ path: 'nest/a', state: 'complete' }));
      // b's last piece is shared with sub/s: partial, not missing.
      expect(files).toContainEqual(expect.objectContaining({ path: 'nest/b', state: 'partial' }));
      expect(files).toContainEqual(
        expect.objectContaining({ path: 'nest/sub/s', state: 'missing' }),
      );
      const none = ['--peer', '127.0.0.1:9', '--no-dht', '--no-listen', '--seed-time', '0'];
      const s = await runCli(['seed', t, '-o', d, ...none]);
      expect(s.code).toBe(5);
      expect(s.stderr).toContain(`the data under ${d} is incomplete`);
      await rm(path.join(d, 'sub'));
    }
  });

  it('verify reports a torrent link that is gone or leads elsewhere, as seed would find it', async () => {
    const d = path.join(dir, 'linked');
    await mkdir(d);
    await writeFile(path.join(d, 'a.bin'), 'aaaa');
    await writeFile(path.join(d, 'b.bin'), 'bbbb');
    await symlink('b.bin', path.join(d, 'link'));
    const t = path.join(dir, 'linked.torrent');
    expect((await runCli(['create', d, '-o', t, '-q'])).code).toBe(0);
    const ok = await runCli(['verify', t, '-o', dir]);
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toContain('files:    3 of 3 complete\n');

    await rm(path.join(d, 'link'));
    await symlink('a.bin', path.join(d, 'link'));
    const wrong = await runCli(['verify', t, '-o', dir]);
    expect(wrong.code).toBe(5);
    expect(wrong.stdout).toContain(
      "files:    2 of 3 complete\n  not the torrent's link  linked/link\n",
    );
    // A download would refuse to replace it: the advice says what to do first.
    expect(wrong.stdout).toContain(
      "result:   all data valid, not finished: remove what is in the place of the torrent's " +
        'link, then run tdl download again\n',
    );
    const json = await runCli(['verify', t, '-o', dir, '--json']);
    expect(json.events.at(-1)!['files']).toContainEqual({
      path: 'linked/link',
      onDisk: path.join(d, 'link'),
      length: 0,
      valid: 0,
      state: 'wrong-link',
    });
    const seed = await runCli([
      'seed',
      t,
      '-o',
      dir,
      '--port',
      '0',
      '--no-dht',
      '--seed-time',
      '0.001',
    ]);
    // As verify says: incomplete (exit 5), naming the link and where it leads; left as it is.
    expect(seed.code).toBe(5);
    expect(seed.stderr).toContain(
      `${path.join(d, 'link')} leads to a.bin, not to the torrent's b.bin`,
    );
    expect(await readlink(path.join(d, 'link'))).toBe('a.bin');

    await rm(path.join(d, 'link'));
    const gone = await runCli(['verify', t, '-o', dir]);
    expect(gone.code).toBe(5);
    expect(gone.stdout).toContain('  missing     linked/link\n');
    expect(gone.stdout).toContain('result:   all data valid, not finished');
    // A download finishes it without a peer: the link is made again.
    const d2 = await runCli(['download', t, '-o', dir, '--peer', '127.0.0.1:9', '--no-dht']);
    expect(d2.code, d2.stderr).toBe(0);
    expect(await readlink(path.join(d, 'link'))).toBe('b.bin');
  });

  it('skips a link to what it leaves out of the torrent, saying so', async () => {
    const d = path.join(dir, 'skips');
    await mkdir(path.join(d, 'empty'), { recursive: true });
    await writeFile(path.join(d, 'a'), 'a');
    // Two names that are not UTF-8, told apart in the warnings as tdl info would name them.
    const latin1 = (name: string) =>
      Buffer.concat([Buffer.from(`${d}/`), Buffer.from(name, 'latin1')]);
    await writeFile(latin1('caf\xe9'), 'q');
    await writeFile(latin1('caf\xfe'), 'q');
    spawnSync('mkfifo', [path.join(d, 'fifo')]);
    await symlink('fifo', path.join(d, 'to-fifo'));
    await symlink('empty', path.join(d, 'to-empty'));
    await symlink(Buffer.from('caf\xe9', 'latin1'), path.join(d, 'to-bad'));
    await symlink('out.torrent', path.join(d, 'to-out'));
    await symlink('a', path.join(d, 'to-a'));
    const t = path.join(d, 'out.torrent');
    await writeFile(t, 'an earlier torrent');
    const r = await runCli(['create', d, '-o', t, '--no-date']);
    expect(r.code, r.stderr).toBe(0);
    const m = parseTorrent(await readFile(t));
    expect(m.files.map((x) => [x.path.join('/'), x.symlink])).toEqual([
      ['a', undefined],
      ['to-a', ['a']],
    ]);
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('tdl: warning: skipped '));
    expect(warnings.sort()).toEqual([
      'tdl: warning: skipped caf%E9: name is not valid UTF-8',
      'tdl: warning: skipped caf%FE: name is not valid UTF-8',
      'tdl: warning: skipped empty: empty folder (a torrent holds files only)',
      'tdl: warning: skipped fifo: not a regular file',
      'tdl: warning: skipped out.torrent: the output file itself (it is replaced)',
      'tdl: warning: skipped to-bad: symbolic link to caf%E9, which is not in the torrent',
      'tdl: warning: skipped to-empty: symbolic link to empty, which is not in the torrent',
      'tdl: warning: skipped to-fifo: symbolic link to fifo, which is not in the torrent',
      'tdl: warning: skipped to-out: symbolic link to out.torrent, which is not in the torrent',
    ]);
  });

  it('refuses a blank --tracker, URLs with spaces, and says why a name cannot be found', async () => {
    const f = path.join(dir, 'f');
    await writeFile(f, 'data');
    const out = path.join(dir, 'f.torrent');
    for (const [args, message] of [
      [['--tracker', ' '], '--tracker " ": no URL in it'],
      [['--tracker', ','], '--tracker ",": no URL in it'],
      [
        ['--tracker', 'http://a.example/ b'],
        'tracker "http://a.example/ b" holds white space or control characters (percent-encode them: %20)',
      ],
      // In the host too, where the URL parser alone said only "is not a URL".
      [
        ['--tracker', 'http://a b/x'],
        'tracker "http://a b/x" holds white space or control characters (percent-encode them: %20)',
      ],
      [
        ['--web-seed', 'http://w.example/x\ty'],
        'web seed "http://w.example/x\\ty" holds white space or control characters (percent-encode them: %20)',
      ],
      // What a reader of the torrent would drop: no host written out, port 0.
      [['--web-seed', 'http:///x'], 'web seed "http:///x" has no host (scheme://host/…)'],
      [
        ['--tracker', 'http:ann.example/a'],
        'tracker "http:ann.example/a" has no host (scheme://host/…)',
      ],
      [['--tracker', 'udp://t.example:0'], 'tracker "udp://t.example:0": port 0'],
      // A comma inside a URL cuts it in two.
      [
        ['--tracker', 'http://t.example/a?key=1,2'],
        // (The query is hidden, as a passkey may be in it.)
        '--tracker "http://t.example/a?…": "2" is not a URL (a comma separates the ' +
          'trackers of one tier: write a comma inside a URL as %2C)',
      ],
    ] as const) {
      const r = await runCli(['create', f, '-o', out, ...args]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toBe(`tdl: ${message}\n`);
    }
    // White space around a URL is dropped, for web seeds as for trackers.
    const around = await runCli(['create', f, '-o', out, '--web-seed', ' http://w.example/f ']);
    expect(around.code, around.stderr).toBe(0);
    expect(parseTorrent(await readFile(out)).urlList).toEqual(['http://w.example/f']);
    // Node reads arguments as UTF-8: a name that is not arrives as U+FFFD.
    const r = await runCli(['create', path.join(dir, 'top\uFFFD'), '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'holds a byte that is not UTF-8 (shown as \uFFFD), which tdl cannot name: rename it',
    );
    const notDir = await runCli(['create', f, '-o', path.join(f, 'x.torrent')]);
    expect(notDir.code).toBe(2);
    expect(notDir.stderr).toBe(`tdl: -o ${path.join(f, 'x.torrent')}: ${f} is not a folder\n`);
  });

  it('keeps a tracker or web seed named twice once, where it first came, and says so', async () => {
    const f = path.join(dir, 'f');
    await writeFile(f, 'data');
    const out = path.join(dir, 'f.torrent');
    const args = [
      'create',
      f,
      '-o',
      out,
      '--tracker',
      'http://a.example/ann,http://b.example/ann,http://a.example/ann',
      '--tracker',
      'http://b.example/ann',
      '--tracker',
      'udp://c.example:6969',
      '--web-seed',
      'https://w.example/',
      '--web-seed',
      'https://w.example/',
      '--no-date',
    ];
    const r = await runCli(args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(
      'tdl: warning: tracker http://a.example/ann given twice: kept once\n' +
        'tdl: warning: tracker http://b.example/ann given twice: kept once\n' +
        'tdl: warning: web seed https://w.example/ given twice: kept once\n',
    );
    const m = parseTorrent(await readFile(out));
    expect(m.announceList).toEqual([
      ['http://a.example/ann', 'http://b.example/ann'],
      ['udp://c.example:6969'],
    ]);
    expect(m.urlList).toEqual(['https://w.example/']);
    const quiet = await runCli([...args, '-q']);
    expect([quiet.code, quiet.stdout, quiet.stderr]).toEqual([0, '', '']);
  });

  it('-o through a link to a missing file writes that file, as > would; a loop is refused', async () => {
    const f = path.join(dir, 'f');
    await writeFile(f, 'data');
    await mkdir(path.join(dir, 'sub'));
    const link = path.join(dir, 'link.torrent');
    await symlink('sub/made.torrent', link);
    const r = await runCli(['create', f, '-o', link, '-q']);
    expect(r.code, r.stderr).toBe(0);
    expect(await readlink(link)).toBe('sub/made.torrent');
    expect(parseTorrent(await readFile(path.join(dir, 'sub', 'made.torrent'))).name).toBe('f');
    await symlink('loop-b', path.join(dir, 'loop-a'));
    await symlink('loop-a', path.join(dir, 'loop-b'));
    const loop = await runCli(['create', f, '-o', path.join(dir, 'loop-a')]);
    expect(loop.code).toBe(2);
    expect(loop.stderr).toBe(`tdl: -o ${path.join(dir, 'loop-a')}: a loop of symbolic links\n`);
    await symlink('missing/x.torrent', path.join(dir, 'nowhere'));
    const missing = await runCli(['create', f, '-o', path.join(dir, 'nowhere')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`no folder ${path.join(dir, 'missing')}`);
  });

  it('verify and seed refuse a link where the torrent has a file, as unreadable data', async () => {
    // mktorrent, transmission-create and libtorrent follow links: their torrent has the data of
    // a.txt twice, and the folder it was made from holds a link. tdl reads no file through a
    // link; it says so (exit 6), rather than blaming the torrent or claiming to write.
    const d = path.join(dir, 'linked');
    await mkdir(d);
    await writeFile(path.join(d, 'a.txt'), 'hello');
    await symlink('a.txt', path.join(d, 'to-a'));
    const made = makeTorrent({
      name: 'linked',
      pieceLength: PL,
      files: [
        { path: ['a.txt'], data: Buffer.from('hello') },
        { path: ['to-a'], data: Buffer.from('hello') },
      ],
    });
    const t = path.join(dir, 'linked.torrent');
    await writeFile(t, made.torrent);
    const message = `tdl: cannot read ${path.join(d, 'to-a')}: it is a symbolic link, and tdl never reads a torrent's files through a link (replace it with the file itself)\n`;
    // The folder that holds it, and the torrent's folder itself (recognised as this torrent's).
    for (const out of [dir, d]) {
      const v = await runCli(['verify', t, '-o', out]);
      expect(v.code).toBe(6);
      expect(v.stderr).toBe(message);
      const s = await runCli(['seed', t, '-o', out, '--port', '0', '--no-dht'], {
        signal: AbortSignal.timeout(10_000),
      });
      expect(s.code).toBe(6);
      expect(s.stderr).toBe(message);
    }
  });

  it('a single file made into a torrent through a link: verify and seed read it when -o names the link', async () => {
    const f = path.join(dir, 'real.bin');
    await writeFile(f, 'the data');
    const link = path.join(dir, 'alias.bin');
    await symlink('real.bin', link);
    const t = path.join(dir, 'alias.torrent');
    expect((await runCli(['create', link, '-o', t, '-q'])).code).toBe(0);
    expect(parseTorrent(await readFile(t)).name).toBe('alias.bin');
    const v = await runCli(['verify', t, '-o', link, '-q']);
    expect(v.code, v.stderr).toBe(0);
    const seedArgs = ['--port', '0', '--no-dht', '--seed-time', '0.001', '--peer', '127.0.0.1:9'];
    const s = await runCli(['seed', t, '-o', link, ...seedArgs]);
    expect(s.code, s.stderr).toBe(0);
    expect(await readlink(link)).toBe('real.bin');
    // A link at the path the torrent's name makes (no -o) stays refused: it was not named.
    const named = await runCli(['verify', t, '-o', dir]);
    expect(named.code).toBe(6);
    expect(named.stderr).toContain(`${link}: it is a symbolic link`);
  });

  it('verify and seed refuse a folder of the torrent made into a link, from either -o', async () => {
    const d = path.join(dir, 'data');
    await mkdir(path.join(d, 'sub'), { recursive: true });
    await writeFile(path.join(d, 'a.bin'), 'aaaa');
    await writeFile(path.join(d, 'sub', 'b.bin'), 'bbbb');
    const t = path.join(dir, 'data.torrent');
    expect((await runCli(['create', d, '-o', t, '-q'])).code).toBe(0);
    await rename(path.join(d, 'sub'), path.join(d, 'sub2'));
    await symlink('sub2', path.join(d, 'sub'));
    // The folder that holds it, and the torrent's folder itself (not taken for a place to put
    // a new data/data).
    for (const out of [dir, d]) {
      const v = await runCli(['verify', t, '-o', out]);
      expect(v.code, v.stdout).toBe(6);
      expect(v.stderr).toContain(`${path.join(d, 'sub')}: it is a symbolic link`);
      const s = await runCli([
        'seed',
        t,
        '-o',
        out,
        '--port',
        '0',
        '--no-dht',
        '--seed-time',
        '0.001',
      ]);
      expect(s.code, s.stderr).toBe(6);
      expect(s.stderr).toContain(`${path.join(d, 'sub')}: it is a symbolic link`);
    }
    expect(await readdir(d)).toEqual(['a.bin', 'sub', 'sub2']);
  });

  it('the hashing line on a terminal fits its width (a wrapped line could not be redrawn)', async () => {
    const f = path.join(dir, 'movie.mkv');
    await writeFile(f, randomBytesSeeded(3 * 1024 * 1024, 'create-narrow'));
    for (const columns of [20, 30, 40, 60, 80, 200]) {
      const r = await runCli(['create', f, '-o', path.join(dir, `n${columns}.torrent`)], {
        tty: true,
        columns,
      });
      expect(r.code, r.stderr).toBe(0);
      const drawn = r.stderr.split('\r\x1b[2K').filter((l) => l.startsWith('hashing'));
      expect(drawn.length).toBeGreaterThan(0);
      for (const line of drawn) {
        expect(line.length, line).toBeLessThan(columns);
        // Whole figures or none: a rate cut to "357 MiB" would read as a size.
        expect(line, line).toMatch(
          / +\d+%( [\d.]+ [KMG]?i?B \/ [\d.]+ [KMG]?i?B(  [\d.]+ [KMG]?i?B\/s)?)?$/,
        );
      }
      // Always the percentage at least.
      expect(drawn.at(-1)).toMatch(/100%/);
    }
  });

  it('a run that fails while the hashing line is up wipes it before its message', async () => {
    const f = path.join(dir, 'big.bin');
    await writeFile(f, '');
    await truncate(f, 256 * 1024 * 1024); // sparse: read fast, yet many chunks
    const ctl = new AbortController();
    let stderr = '';
    const code = await run(['create', f, '-o', path.join(dir, 'big.torrent')], {
      stdout: { write: () => true },
      stderr: {
        write: (s: string) => {
          stderr += s;
          // Ctrl-C as soon as the line is drawn.
          if (s.includes('hashing')) ctl.abort(new InterruptedError('SIGINT'));
          return true;
        },
        isTTY: true,
        columns: 100,
      },
      signal: ctl.signal,
    });
    expect(code, stderr).toBe(130);
    expect(stderr).toContain('hashing');
    expect(stderr).toMatch(/\r\x1b\[2Ktdl: interrupted by SIGINT\n$/);
  });

  it('a skipped name is printed escaped, in the reason too (no bidi or control character)', async () => {
    const d = path.join(dir, 'names');
    await mkdir(d);
    await writeFile(path.join(d, 'ok.txt'), 'x');
    // A backslash makes the name unsafe; the override and the escape would drive the terminal.
    await writeFile(path.join(d, 'a\\b\u202ecod.exe\u001b[2J'), 'y');
    const r = await runCli(['create', d, '-o', path.join(dir, 'names.torrent')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('tdl: warning: skipped ');
    expect(r.stderr).toContain('\\u202e');
    expect(r.stderr).not.toMatch(/[\u202e\u001b]/);
  });

  it('skips names with a control character, which other clients refuse or rename', async () => {
    const d = path.join(dir, 'ctl');
    await mkdir(path.join(d, 'tab\there'), { recursive: true });
    await writeFile(path.join(d, 'ok.txt'), 'x');
    await writeFile(path.join(d, 'new\nline'), 'y');
    await writeFile(path.join(d, 'tab\there', 'inside'), 'z');
    const t = path.join(dir, 'ctl.torrent');
    const r = await runCli(['create', d, '-o', t]);
    expect(r.code, r.stderr).toBe(0);
    expect(parseTorrent(await readFile(t)).files.map((f) => f.path.join('/'))).toEqual(['ok.txt']);
    const skipped = r.stderr.split('\n').filter((l) => l.startsWith('tdl: warning: skipped '));
    expect(skipped).toHaveLength(2);
    for (const l of skipped) expect(l).toMatch(/holds a control character/);
  });

  it('usage errors exit 2, a missing input too', async () => {
    const f = path.join(dir, 'f');
    await writeFile(f, 'x');
    expect((await runCli(['create', f])).code).toBe(2);
    expect(
      (await runCli(['create', f, '-o', path.join(dir, 'o'), '--piece-length', '3K'])).code,
    ).toBe(2);
    expect(
      (await runCli(['create', f, '-o', path.join(dir, 'o'), '--tracker', 'ftp://x'])).code,
    ).toBe(2);
    const missing = await runCli(['create', path.join(dir, 'missing'), '-o', path.join(dir, 'o')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing: no such file or folder/);
    // System errors in words, as a shell's tools print them (not ENOENT).
    const info = await runCli(['info', path.join(dir, 'nothere.torrent')]);
    expect(info.code).toBe(2);
    expect(info.stderr).toBe(
      `tdl: cannot read ${path.join(dir, 'nothere.torrent')}: no such file or directory\n`,
    );
  });
});

/** Runs tdl in a pseudo-terminal with TERM set; returns everything it wrote there. */
function inPty(term: string, args: string[]): string {
  assertBuilt();
  const host = [
    'import os, pty, sys',
    'pid, fd = pty.fork()',
    'if pid == 0:',
    '    os.execv(sys.argv[1], sys.argv[1:])',
    'seen = b""',
    'while True:',
    '    try: b = os.read(fd, 65536)',
    '    except OSError: break',
    '    if not b: break',
    '    seen += b',
    'os.waitpid(pid, 0)',
    'sys.stdout.write(seen.decode("utf-8", "replace"))',
  ].join('\n');
  const r = spawnSync('python3', ['-c', host, process.execPath, MAIN, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    killSignal: 'SIGKILL',
    env: { ...process.env, TERM: term },
  });
  return r.stdout;
}

describe('a terminal that cannot move its cursor (TERM=dumb)', () => {
  it('gets no redrawn line, only what a pipe gets', async () => {
    const data = randomBytesSeeded(300_000, 'dumb');
    const t = makeTorrent({ name: 'd.bin', pieceLength: 16384, files: { data } });
    const tp = path.join(dir, 't.torrent');
    await writeFile(tp, t.torrent);
    await writeFile(path.join(dir, 'd.bin'), data);
    const args = ['verify', tp, '-o', path.join(dir, 'd.bin')];
    expect(inPty('xterm', args)).toContain('\r\x1b[2K');
    const dumb = inPty('dumb', args);
    expect(dumb).toContain('result:   complete');
    expect(dumb).not.toContain('\x1b');
  });
});

describe('tdl create onto a terminal', () => {
  it('-o -, -o /dev/stdout and -o /dev/tty are refused, writing nothing there', async () => {
    const f = path.join(dir, 'tty.bin');
    await writeFile(f, randomBytesSeeded(40_000, 'tty'));
    for (const o of ['-', '/dev/stdout', '/dev/tty']) {
      const seen = inPty('xterm', ['create', f, '-o', o, '--no-date']);
      expect(seen).toContain(`tdl: -o ${o} would write a binary .torrent to the terminal`);
      expect(seen).not.toContain('4:info');
    }
  });
});

describe('a stdout reader that takes nothing', () => {
  /**
   * Runs tdl with stdout into a 4 KiB pipe nobody reads, until it exits (30 s at most); returns
   * its exit code (or 'hung') and stderr.
   */
  function unread(args: string[]): { code: string; stderr: string } {
    assertBuilt();
    const host = String.raw`
import fcntl, os, subprocess, sys
r, w = os.pipe()
fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ
p = subprocess.Popen(sys.argv[1:], stdout=w, stderr=subprocess.PIPE)
os.close(w)
try:
    code = p.wait(timeout=30)
except subprocess.TimeoutExpired:
    p.kill()
    p.wait()
    code = "hung"
print(code)
sys.stdout.write(p.stderr.read().decode())
`;
    const r = spawnSync('python3', ['-c', host, process.execPath, MAIN, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
      killSignal: 'SIGKILL',
    });
    const [code = '', ...rest] = r.stdout.split('\n');
    return { code, stderr: rest.join('\n') };
  }

  it('info and create -o - give it up after 2 s without a byte taken: exit 141, said', async () => {
    const d = path.join(dir, 'many');
    await mkdir(d);
    for (let i = 0; i < 2000; i++) {
      await writeFile(path.join(d, `a-file-with-a-rather-long-name-${i}.txt`), String(i));
    }
    const t = path.join(dir, 'many.torrent');
    expect((await runCli(['create', d, '-o', t, '-q'])).code).toBe(0);
    for (const args of [
      ['info', t],
      ['info', t, '--json'],
      ['create', d, '-o', '-', '-q'],
    ]) {
      const r = unread(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe('141');
      expect(r.stderr).toMatch(
        /^tdl: standard output took nothing for 2 s: \d+ bytes of output dropped\n$/,
      );
    }
  }, 120_000);
});
