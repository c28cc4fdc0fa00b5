/**
 * `tdl download <torrent> -o -` through the built CLI in a child process: the file's bytes, and
 * nothing else, come out of stdout in order; the working copy under $XDG_CACHE_HOME/tdl/stream/
 * goes once every byte is flushed; a reader that goes away ends the run with exit 141, a resume
 * file and `stopped` sent; a slow reader does not make tdl buffer the file in memory.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  generatedData,
  generatedTorrent,
  startGeneratedSeeder,
} from '../../scripts/lib/gen-seeder.mjs';
import { decodeResume } from '../../src/storage/resume.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, killWithTest, MAIN, spawnTdl, until } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 32 * 1024;

beforeAll(() => assertBuilt());

interface Streamed {
  child: ChildProcess;
  /** Bytes read from stdout so far. */
  bytes(): Buffer;
  received(): number;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  peakRss(): number | null;
}

/**
 * The CLI with its stdout read into the test as bytes, XDG_CACHE_HOME pointing to this test's
 * own cache folder. `keep: false` counts the bytes and hashes them without keeping them.
 */
function spawnStream(args: string[], cache: string, o: { keep?: boolean } = {}): Streamed {
  return spawnChild(process.execPath, [MAIN, ...args], cache, o);
}

/** A program (the CLI, or a shell running it in a pipeline), killed with its group at the end. */
function spawnChild(
  command: string,
  argv: string[],
  cache: string,
  o: { keep?: boolean } = {},
): Streamed {
  const child = spawn(command, argv, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DEBUG: '', XDG_CACHE_HOME: cache },
  });
  const chunks: Buffer[] = [];
  let received = 0;
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => {
    received += b.length;
    if (o.keep !== false) chunks.push(b);
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 1 << 20) stderr += s;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  killWithTest(child, exited, fx.onClose);
  return {
    child,
    bytes: () => Buffer.concat(chunks),
    received: () => received,
    stderr: () => stderr,
    exited,
    peakRss() {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        return m ? Number(m[1]) * 1024 : null;
      } catch {
        return null;
      }
    },
  };
}

/** The CLI run to its end: exit code, stdout bytes, stderr. */
function runStream(args: string[], cache: string) {
  return runChild(spawnStream(args, cache));
}

/** `bash -c pipeline` run to its end (the CLI in it sees this test's cache folder). */
function runShell(pipeline: string, cache: string) {
  return runChild(spawnChild('bash', ['-c', pipeline], cache));
}

/** A shell word for `s`, quoted. */
const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** The shell command that streams `torrent` from `port` to stdout (`-o -`), and `extra`. */
function streamCommand(torrent: string, port: number, extra: string[] = []): string {
  return [process.execPath, MAIN, 'download', torrent, '-o', '-', ...extra]
    .concat(['--peer', `127.0.0.1:${port}`, '--no-listen', '--no-dht'])
    .map(q)
    .join(' ');
}

async function runChild(s: Streamed) {
  const { code } = await s.exited;
  // The pipes may still hold the last bytes when the process is gone.
  await until(() => s.child.stdout!.readableEnded || s.child.stdout!.destroyed, 10_000, 'stdout');
  return { code, stdout: s.bytes(), stderr: s.stderr() };
}

/**
 * The `--json` events of a run (its stderr with `-o -`): the `progress` events' time never goes
 * back, and the last event, `done`, has an `elapsedMs` no less than any of them. Returns `done`.
 */
function timeNeverBack(stderr: string): Record<string, unknown> {
  const events = stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const times = events.filter((e) => e['event'] === 'progress').map((e) => Number(e['time']));
  for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]!);
  const done = events.at(-1)!;
  expect(done['event']).toBe('done');
  expect(Number(done['elapsedMs'])).toBeGreaterThanOrEqual(Math.max(0, ...times));
  return done;
}

function workDir(cache: string, infoHash: Buffer): string {
  return path.join(cache, 'tdl', 'stream', infoHash.toString('hex'));
}

function fiveFiles() {
  const sizes = [50_000, 70_000, 100_000, 40_000, 90_000];
  const files = sizes.map((n, i) => ({
    path: [`f${i + 1}.bin`],
    data: randomBytesSeeded(n, `stream-${i}`),
  }));
  return { files, t: makeTorrent({ name: 'five', pieceLength: PIECE, files }) };
}

/**
 * Streams a single-file torrent of `data` named `name` from a fake seeder: the bytes come
 * whole, with no message, and the working copy is gone after.
 */
async function streamsWhole(name: string, data: Buffer): Promise<void> {
  const t = makeTorrent({ name, pieceLength: PIECE, files: { data } });
  const seeder = await fx.seeder(t, PIECE);
  const torrent = await fx.writeTorrent(t);
  const cache = path.join(fx.dir, 'cache');
  const r = await runStream(
    ['download', torrent, '-o', '-', '--peer', `127.0.0.1:${seeder.port}`, '--no-listen'],
    cache,
  );
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout.length).toBe(data.length);
  expect(r.stdout.equals(data)).toBe(true);
  expect(existsSync(workDir(cache, t.infoHash))).toBe(false);
}

describe('tdl download -o -', () => {
  it('streams a single-file torrent to stdout, byte for byte, then removes the working copy', async () => {
    const data = randomBytesSeeded(3 * 1024 * 1024 + 1234, 'stream-single');
    await streamsWhole('one.bin', data);
    // Nothing was written beside the torrent either (no file named `-`).
    expect(existsSync(path.join(fx.dir, '-'))).toBe(false);
  });

  it('removes the working copy of a file whose name is too long for a plain .part suffix', async () => {
    // 252 bytes: its working name is cut and tagged with a hash (see withSuffix).
    const name = 'é'.repeat(126);
    await streamsWhole(name, randomBytesSeeded(200_000, 'stream-long-name'));
  });

  it('streams only the selected file of a multi-file torrent (--select 2)', async () => {
    const { files, t } = fiveFiles();
    const seeder = await fx.seeder(t, PIECE);
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    const r = await runStream(
      [
        'download',
        torrent,
        '-o',
        '-',
        '--select',
        '2',
        '--peer',
        `127.0.0.1:${seeder.port}`,
        '--no-listen',
        '--json',
      ],
      cache,
    );
    expect(r.code).toBe(0);
    expect(r.stdout.equals(files[1]!.data)).toBe(true);
    // --json events went to stderr, one per line.
    const events = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.find((e) => e['event'] === 'started')).toBeDefined();
    expect(events.find((e) => e['event'] === 'done')).toMatchObject({ output: '-' });
    expect(existsSync(workDir(cache, t.infoHash))).toBe(false);
  });

  /**
   * The five-file torrent, and a stream of its file 5 (90,000 bytes: more than a pipe holds)
   * cut short by its reader: its working copy stays. `held()`: that copy's names.
   */
  async function fiveWithFileFiveCut() {
    const { files, t } = fiveFiles();
    const seeder = await fx.seeder(t, PIECE);
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    const dir = workDir(cache, t.infoHash);
    const cut = await runShell(
      `set -o pipefail; ${streamCommand(torrent, seeder.port, ['--select', '5'])} | head -c 10`,
      cache,
    );
    expect(cut.code).toBe(141);
    expect(cut.stdout.length).toBe(10);
    expect(existsSync(dir)).toBe(true);
    const held = () => readdirSync(path.join(dir, 'five')).filter((n) => n.startsWith('f5.bin'));
    expect(held()).toHaveLength(1);
    return { files, seeder, torrent, cache, dir, held };
  }

  it("a finished stream of one file leaves another file's unfinished working copy", async () => {
    const { files, seeder, torrent, cache, dir, held } = await fiveWithFileFiveCut();
    // File 2 streamed to its end: its copy goes, file 5's stays.
    const two = await runStream(
      [
        'download',
        torrent,
        '-o',
        '-',
        '--select',
        '2',
        '--peer',
        `127.0.0.1:${seeder.port}`,
        '--no-listen',
      ],
      cache,
    );
    expect(two.code, two.stderr).toBe(0);
    expect(two.stdout.equals(files[1]!.data)).toBe(true);
    expect(held()).toHaveLength(1);
    expect(readdirSync(path.join(dir, 'five')).some((n) => n.startsWith('f2.bin'))).toBe(false);
    // File 5 again, to its end: nothing of the torrent is left.
    const five = await runStream(
      [
        'download',
        torrent,
        '-o',
        '-',
        '--select',
        '5',
        '--peer',
        `127.0.0.1:${seeder.port}`,
        '--no-listen',
      ],
      cache,
    );
    expect(five.code, five.stderr).toBe(0);
    expect(five.stdout.equals(files[4]!.data)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });

  it("--no-resume removes its own working copy only: never another file's, nor a running stream's", async () => {
    const { files, seeder, torrent, cache, dir, held } = await fiveWithFileFiveCut();
    const peer = ['--peer', `127.0.0.1:${seeder.port}`, '--no-listen'];
    // File 2 with --no-resume, to its end: file 5's copy and its side files stay.
    const two = await runStream(
      ['download', torrent, '-o', '-', '--select', '2', '--no-resume', ...peer],
      cache,
    );
    expect(two.code, two.stderr).toBe(0);
    expect(two.stdout.equals(files[1]!.data)).toBe(true);
    expect(held()).toHaveLength(1);
    // A run the lock turns away (another tdl streams this torrent) removes nothing.
    const lock = path.join(dir, 'five.tdl-lock');
    await writeFile(lock, `${process.pid}\n`);
    const refused = await runStream(
      ['download', torrent, '-o', '-', '--select', '5', '--no-resume', ...peer],
      cache,
    );
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain('in use by another tdl');
    expect(existsSync(lock)).toBe(true);
    expect(held()).toHaveLength(1);
  });

  it('a run that finds no data leaves no folder it made, up to the cache folder', async () => {
    const { t } = fiveFiles();
    // No cache folder yet: tdl makes it, with tdl/stream/<info hash> in it, and removes them.
    const cache = path.join(fx.dir, 'fresh-cache');
    const torrent = await fx.writeTorrent(t);
    const noPeer = ['--peer', '127.0.0.1:1', '--no-listen', '--no-dht', '--timeout', '1'];
    const r = await runStream(['download', torrent, '-o', '-', '--select', '1', ...noPeer], cache);
    expect(r.code, r.stderr).toBe(4);
    expect(existsSync(cache)).toBe(false);
    // A cache folder that was there stays, and what else it holds.
    await mkdir(path.join(cache, 'tdl'), { recursive: true });
    await writeFile(path.join(cache, 'tdl', 'dht.dat'), 'x');
    const again = await runStream(
      ['download', torrent, '-o', '-', '--select', '1', ...noPeer],
      cache,
    );
    expect(again.code, again.stderr).toBe(4);
    expect(readdirSync(path.join(cache, 'tdl'))).toEqual(['dht.dat']);
  });

  it('a magnet link whose metadata never comes leaves no working folder', async () => {
    const { t } = fiveFiles();
    const cache = path.join(fx.dir, 'cache');
    const r = await runStream(
      ['download', `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}`, '-o', '-'].concat([
        '--peer',
        '127.0.0.1:1',
        '--no-listen',
        '--no-dht',
        '--timeout',
        '1',
      ]),
      cache,
    );
    expect(r.code, r.stderr).toBe(4);
    expect(existsSync(workDir(cache, t.infoHash))).toBe(false);
  });

  it('streams from a magnet link: metadata from tdl seeding the torrent, then the file', async () => {
    const data = randomBytesSeeded(1024 * 1024 + 77, 'stream-magnet');
    const tracker = await fx.tracker([]);
    const t = makeTorrent({
      name: 'm.bin',
      pieceLength: PIECE,
      files: { data },
      announce: tracker.url,
    });
    const src = path.join(fx.dir, 'm.bin');
    await writeFile(src, data);
    const torrent = await fx.writeTorrent(t);
    const seed = spawnTdl(
      ['seed', torrent, '-o', src, '--port', '0', '--json', '--no-dht'],
      fx.onClose,
    );
    const port = await seed.port();
    const cache = path.join(fx.dir, 'cache');
    const magnet = `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}&x.pe=127.0.0.1:${port}`;
    const r = await runStream(['download', magnet, '-o', '-', '--no-dht', '--no-listen'], cache);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.equals(data)).toBe(true);
    expect(existsSync(workDir(cache, t.infoHash))).toBe(false);
  });

  it('refuses, with exit 2: several files, --seed, tdl seed', async () => {
    const { t } = fiveFiles();
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    const peer = ['--peer', '127.0.0.1:1', '--no-listen', '--no-dht'];
    const many = await runStream(['download', torrent, '-o', '-', ...peer], cache);
    expect(many.code).toBe(2);
    expect(many.stderr).toContain('-o - needs a single file: this torrent has 5');
    expect(many.stderr).toContain('--select');
    expect(many.stdout.length).toBe(0);
    const two = await runStream(
      ['download', torrent, '-o', '-', '--select', '1,3', ...peer],
      cache,
    );
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('the selection has 2 of 5');
    const seed = await runStream(
      ['download', torrent, '-o', '-', '--select', '1', '--seed', ...peer],
      cache,
    );
    expect(seed.code).toBe(2);
    expect(seed.stderr).toMatch(/--seed \(or --seed-time, --seed-ratio\) cannot be used with -o -/);
    const seedCmd = await runStream(['seed', torrent, '-o', '-', ...peer], cache);
    expect(seedCmd.code).toBe(2);
    expect(seedCmd.stderr).toContain('tdl seed needs -o to name where the data is');
    const verifyCmd = await runStream(['verify', torrent, '-o', '-'], cache);
    expect(verifyCmd.code).toBe(2);
    expect(verifyCmd.stderr).toContain('tdl verify needs -o to name where the data is');
    // Nothing was created for these runs.
    expect(existsSync(path.join(cache, 'tdl', 'stream'))).toBe(false);
  });

  it('in a shell pipeline: `| sha1sum` sees the whole file, `| head -c` ends tdl with 141', async () => {
    const data = randomBytesSeeded(2 * 1024 * 1024 + 99, 'stream-shell');
    const t = makeTorrent({ name: 'sh.bin', pieceLength: PIECE, files: { data } });
    const seeder = await fx.seeder(t, PIECE);
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    const tdl = streamCommand(torrent, seeder.port);
    const sum = await runShell(`set -o pipefail; ${tdl} | sha1sum`, cache);
    expect(sum.code, sum.stderr).toBe(0);
    expect(sum.stdout.toString().split(' ')[0]).toBe(createHash('sha1').update(data).digest('hex'));
    expect(sum.stderr).toBe('');
    // stderr into the same pipe: written through process.stdout as before (nothing on stderr).
    const both = await runShell(`set -o pipefail; ${tdl} -q 2>&1 | sha1sum`, cache);
    expect(both.code, both.stderr).toBe(0);
    expect(both.stdout.toString().split(' ')[0]).toBe(
      createHash('sha1').update(data).digest('hex'),
    );
    // head exits after 1,000 bytes; tdl finds its stdout closed and exits 141 like a
    // SIGPIPE'd program, with one line on stderr.
    const head = await runShell(
      `${tdl} | head -c 1000 | wc -c; echo "tdl=\${PIPESTATUS[0]}"`,
      cache,
    );
    expect(head.code, head.stderr).toBe(0);
    expect(head.stdout.toString()).toMatch(/^\s*1000\s*\ntdl=141\n$/);
    expect(head.stderr.trim()).toMatch(/^tdl: stopped: standard output was closed[^\n]*$/);
    // The working copy's resume file is kept, and readable.
    const resume = decodeResume(
      readFileSync(path.join(workDir(cache, t.infoHash), 'sh.bin.tdl-resume')),
    );
    expect(resume.ok).toBe(true);
  }, 60_000);

  it('a stderr nobody reads: the stream still ends with exit 0; `2>&1 | head -c` with 141', async () => {
    const data = randomBytesSeeded(1024 * 1024 + 77, 'stream-stderr-gone');
    const t = makeTorrent({ name: 'se.bin', pieceLength: PIECE, files: { data } });
    // A slow seeder: `--json` events keep coming to stderr for a few seconds.
    const slow = await fx.seeder(t, PIECE, { rateLimit: 512 * 1024 });
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    const peer = ['--peer', `127.0.0.1:${slow.port}`, '--no-listen', '--no-dht'];
    const s = spawnStream(['download', torrent, '-o', '-', '--json', ...peer], cache);
    // The reader of stderr is gone before tdl starts: every event written there meets EPIPE.
    s.child.stderr!.destroy();
    const r = await runChild(s);
    expect(r.code).toBe(0);
    expect(r.stdout.equals(data)).toBe(true);
    expect(existsSync(workDir(cache, t.infoHash))).toBe(false);
    // stdout and stderr into one pipe whose reader leaves: the closed stdout ends the run (141),
    // and the stderr that failed with it changes nothing.
    const tdl = streamCommand(torrent, slow.port, ['--json']);
    const head = await runShell(
      `${tdl} 2>&1 | head -c 1000 | wc -c; echo "tdl=\${PIPESTATUS[0]}"`,
      cache,
    );
    expect(head.stdout.toString()).toMatch(/^\s*1000\s*\ntdl=141\n$/);
  }, 60_000);

  it('stdout on a full disk (/dev/full): a disk error, exit 6, resume file kept; --json too', async () => {
    const data = randomBytesSeeded(1024 * 1024, 'stream-full');
    const t = makeTorrent({ name: 'full.bin', pieceLength: PIECE, files: { data } });
    const seeder = await fx.seeder(t, PIECE);
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    const tdl = streamCommand(torrent, seeder.port);
    const full = await runShell(`${tdl} > /dev/full`, cache);
    expect(full.code, full.stderr).toBe(6);
    expect(full.stderr.trim()).toBe(
      'tdl: cannot write to standard output: no space left on device',
    );
    const resume = decodeResume(
      readFileSync(path.join(workDir(cache, t.infoHash), 'full.bin.tdl-resume')),
    );
    expect(resume.ok).toBe(true);
    // `tdl info --json` has finished its run when the write fails: the exit code and the
    // message still say so.
    const info = await runShell(
      `${q(process.execPath)} ${q(MAIN)} info ${q(torrent)} --json > /dev/full`,
      cache,
    );
    expect(info.code).toBe(6);
    expect(info.stderr.trim()).toBe(
      'tdl: cannot write to standard output: no space left on device',
    );
  }, 60_000);

  it.each(['once', 'twice'] as const)(
    'a reader that reads nothing: Ctrl-C (%s) still ends tdl (130) within the exit bound',
    async (times) => {
      // stdout is a pipe to `sleep`, which never reads: the stream's write to the pipe blocks
      // once its 64 KiB are full, while the download completes to the working copy.
      const data = randomBytesSeeded(4 * 1024 * 1024, 'stream-stuck');
      const t = makeTorrent({ name: 'stuck.bin', pieceLength: PIECE, files: { data } });
      const seeder = await fx.seeder(t, PIECE);
      const torrent = await fx.writeTorrent(t);
      const cache = path.join(fx.dir, 'cache');
      const tdl = streamCommand(torrent, seeder.port, ['--json']);
      const s = spawnChild(
        'bash',
        ['-c', `${tdl} > >(sleep 120) & echo "pid=$!"; wait $!; echo "tdl=$?"`],
        cache,
      );
      await until(() => /pid=\d+/.test(s.bytes().toString()), 20_000, 'the pid');
      const pid = Number(/pid=(\d+)/.exec(s.bytes().toString())![1]);
      // Every piece is on disk (the progress event says 100 %): only the stream is left, stuck.
      await until(
        () => /"event":"progress"[^\n]*"percent":100\b/.test(s.stderr()),
        30_000,
        '100 %',
      );
      // 100 % counts verified pieces: wait until the last ones are written too (the working
      // copy is sparse until then).
      const part = path.join(workDir(cache, t.infoHash), 'stuck.bin.part');
      await until(
        () => existsSync(part) && statSync(part).blocks * 512 >= data.length,
        10_000,
        'every piece written',
      );
      const before = Date.now();
      process.kill(pid, 'SIGINT');
      // A second Ctrl-C exits at once (process.exit), past the sink's own 2 s grace.
      if (times === 'twice') {
        await new Promise((r) => setTimeout(r, 200));
        process.kill(pid, 'SIGINT');
      }
      await until(() => /tdl=\d+/.test(s.bytes().toString()), 60_000, 'tdl to exit');
      const took = Date.now() - before;
      expect(s.bytes().toString()).toContain('tdl=130');
      // README: 2 s for the reader to take what was written, then tdl drops it and exits. Far
      // below the reader's 120 s, which a thread blocked in write() would have waited for.
      expect(took).toBeLessThan(45_000);
      if (times === 'twice') return;
      // The download had completed, the stream had not: the interrupt saved every piece in the
      // resume file, so the next run streams the whole file from the working copy, with no peer.
      const dir = workDir(cache, t.infoHash);
      const resume = decodeResume(readFileSync(path.join(dir, 'stuck.bin.tdl-resume')));
      if (!resume.ok) throw new Error(resume.reason);
      expect(resume.state.have.count).toBe(t.pieces.length);
      await seeder.close();
      const gone = `127.0.0.1:${seeder.port}`;
      const again = await runStream(
        ['download', torrent, '-o', '-', '--peer', gone, '--no-listen', '--no-dht'],
        cache,
      );
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout.equals(data)).toBe(true);
      expect(existsSync(dir)).toBe(false);
    },
    120_000,
  );

  it('a reader that goes away: exit 141, resume file kept, stopped sent; the next run streams it all', async () => {
    const data = randomBytesSeeded(4 * 1024 * 1024, 'stream-epipe');
    const tracker = await fx.tracker(() => seeders);
    const t = makeTorrent({
      name: 'cut.bin',
      pieceLength: PIECE,
      files: { data },
      announce: tracker.url,
    });
    // A slow seeder first, so the reader's exit lands mid-download.
    const slow = await fx.seeder(t, PIECE, { rateLimit: 512 * 1024 });
    let seeders = [slow];
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    const args = ['download', torrent, '-o', '-', '--no-dht', '--no-listen'];
    const first = spawnStream(args, cache);
    await until(() => first.received() >= 300_000, 20_000, '300,000 bytes');
    const got = first.bytes();
    first.child.stdout!.destroy();
    const { code } = await first.exited;
    expect(code, first.stderr()).toBe(141);
    // What came out before is the start of the file.
    expect(got.equals(data.subarray(0, got.length))).toBe(true);
    expect(first.stderr()).toContain('standard output was closed');
    expect(first.stderr().trim().split('\n')).toHaveLength(1);
    const dir = workDir(cache, t.infoHash);
    const resume = decodeResume(readFileSync(path.join(dir, 'cut.bin.tdl-resume')));
    if (!resume.ok) throw new Error(resume.reason);
    const kept = resume.state.have.count;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(t.pieces.length);
    await until(
      () => tracker.announces.some((a) => a.event === 'stopped'),
      5_000,
      'a stopped announce',
    );

    // Again, from a fast seeder: what is on disk streams at once, only the rest is fetched.
    const fast = await fx.seeder(t, PIECE);
    seeders = [fast];
    const second = await runStream(args, cache);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.equals(data)).toBe(true);
    expect(fast.served).toBeLessThanOrEqual(data.length - kept * PIECE);
    expect(existsSync(dir)).toBe(false);
  }, 60_000);

  it('a working copy complete before the run streams without a peer; its time counts the stream', async () => {
    const data = randomBytesSeeded(2 * 1024 * 1024, 'stream-copy');
    const t = makeTorrent({ name: 'copy.bin', pieceLength: PIECE, files: { data } });
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    // The working copy, whole, where a stream keeps it.
    const dir = workDir(cache, t.infoHash);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'copy.bin'), data);
    const s = spawnStream(
      [
        'download',
        torrent,
        '-o',
        '-',
        '--no-dht',
        '--no-listen',
        '--json',
        '--peer',
        '127.0.0.1:9',
      ],
      cache,
    );
    // Held for a while: the stream's progress events count that time.
    s.child.stdout!.pause();
    await until(() => /"event":"progress"[^\n]*"time":[1-9]/.test(s.stderr()), 20_000, 'progress');
    s.child.stdout!.resume();
    const r = await runChild(s);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.equals(data)).toBe(true);
    const done = timeNeverBack(r.stderr);
    expect(done).toMatchObject({ downloaded: 0, present: data.length });
    expect(Number(done['elapsedMs'])).toBeGreaterThan(0);
    expect(existsSync(dir)).toBe(false);
  }, 60_000);

  it('--no-resume: a reader that goes away leaves no working copy; without -o - it is refused', async () => {
    const data = randomBytesSeeded(2 * 1024 * 1024, 'stream-no-resume');
    const t = makeTorrent({ name: 'nr.bin', pieceLength: PIECE, files: { data } });
    const slow = await fx.seeder(t, PIECE, { rateLimit: 512 * 1024 });
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    const peer = ['--peer', `127.0.0.1:${slow.port}`, '--no-listen'];
    const s = spawnStream(['download', torrent, '-o', '-', '--no-resume', ...peer], cache);
    await until(() => s.received() >= 100_000, 20_000, '100,000 bytes');
    expect(existsSync(workDir(cache, t.infoHash))).toBe(true);
    s.child.stdout!.destroy();
    const { code } = await s.exited;
    expect(code, s.stderr()).toBe(141);
    expect(existsSync(workDir(cache, t.infoHash))).toBe(false);
    const toFile = await runStream(
      ['download', torrent, '-o', path.join(fx.dir, 'out.bin'), '--no-resume', ...peer],
      cache,
    );
    expect(toFile.code).toBe(2);
    expect(toFile.stderr).toContain('--no-resume applies to -o - only');
  });

  it('a slow peer does not hold the stream up until the end: its pieces are fetched from others too', async () => {
    const piece = 64 * 1024;
    const size = 16 * 1024 * 1024;
    const data = randomBytesSeeded(size, 'stream-slow-peer');
    const t = makeTorrent({ name: 's.bin', pieceLength: piece, files: { data } });
    const slow = await fx.seeder(t, piece, { rateLimit: 4 * 1024 });
    const fast = await fx.seeder(t, piece, { rateLimit: 1024 * 1024 });
    const torrent = await fx.writeTorrent(t);
    const cache = path.join(fx.dir, 'cache');
    const peers = [slow, fast].flatMap((s) => ['--peer', `127.0.0.1:${s.port}`]);
    const s = spawnStream(['download', torrent, '-o', '-', ...peers, '--no-listen'], cache);
    // The slow peer takes some of the first pieces; without help the stream would wait for it
    // until the fast one had fetched everything else (endgame).
    await until(() => s.received() >= 2 * 1024 * 1024, 60_000, '2 MiB on stdout');
    const servedThen = fast.served;
    const { code } = await s.exited;
    expect(code, s.stderr()).toBe(0);
    await until(() => s.child.stdout!.readableEnded, 10_000, 'stdout');
    expect(s.bytes().equals(data)).toBe(true);
    expect(servedThen).toBeLessThan(size - 2 * 1024 * 1024);
  }, 90_000);

  it('a slow reader: the download goes on to disk while tdl holds no more than a few chunks', async () => {
    const size = 64 * 1024 * 1024;
    const gen = generatedData(size, 256 * 1024);
    const { torrent, infoHash } = generatedTorrent(gen, 'gen.bin');
    const seeder = await startGeneratedSeeder(gen, infoHash);
    fx.onClose(() => seeder.close());
    const file = path.join(fx.dir, 'gen.torrent');
    await writeFile(file, torrent);
    const cache = path.join(fx.dir, 'cache');
    await mkdir(cache, { recursive: true });
    const s = spawnStream(
      ['download', file, '-o', '-', '--peer', `127.0.0.1:${seeder.port}`, '--no-listen', '--json'],
      cache,
      { keep: false },
    );
    const hash = createHash('sha1');
    s.child.stdout!.on('data', (b: Buffer) => hash.update(b));
    // Read a little, then stop reading until the whole torrent was served to tdl.
    await until(() => s.received() > 0, 20_000, 'the first bytes');
    s.child.stdout!.pause();
    await until(() => seeder.served() >= size, 60_000, 'the whole torrent served');
    const dir = workDir(cache, infoHash);
    expect((await readdir(dir)).some((f) => f.startsWith('gen.bin'))).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    const peak = s.peakRss();
    const stalled = s.received();
    expect(stalled).toBeLessThan(size / 2);
    s.child.stdout!.resume();
    const { code } = await s.exited;
    expect(code, s.stderr()).toBe(0);
    await until(() => s.child.stdout!.readableEnded, 10_000, 'stdout');
    expect(s.received()).toBe(size);
    const want = createHash('sha1');
    for (let i = 0; i < gen.pieceCount; i++) want.update(gen.piece(i));
    expect(hash.digest('hex')).toBe(want.digest('hex'));
    // A download to a file peaks at about 70 MB here; holding the file too would add 64 MiB.
    if (peak !== null) expect(peak).toBeLessThan(120 * 1024 * 1024);
    // The run's time goes on until the reader has the last byte, never back.
    timeNeverBack(s.stderr());
  }, 120_000);
});
