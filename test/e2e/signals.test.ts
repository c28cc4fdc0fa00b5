/**
 * SIGINT, SIGTERM and SIGHUP against the built CLI in a real child process, mid-download: the exit
 * code is 130 / 143 / 129, the tracker hears `stopped` within a short bound, sockets are closed, and the
 * pieces verified before the signal are on disk.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encode } from '../../src/metainfo/bencode.js';
import { decodeResume } from '../../src/storage/resume.js';
import type { PeerAddress } from '../../src/tracker/types.js';
import { tempDir } from '../helpers/cli.js';
import { checkEvent } from '../helpers/events-schema.js';
import { startFakeSeeder } from '../helpers/fake-seeder.js';
import { compactPeers, parseHttpAnnounce, startHttpTracker } from '../helpers/fake-tracker.js';
import { startHostilePeer } from '../helpers/hostile-peer.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const MAIN = fileURLToPath(new URL('../../dist/bundle/main.js', import.meta.url));
const PIECE = 32768;
/** 4 MiB at 512 KiB/s: about eight seconds, so the signal always lands mid-download. */
const data = randomBytesSeeded(4 * 1024 * 1024, 'signals');
const RATE = 512 * 1024;
/** How soon after the signal the tracker must have heard `stopped` (generous: a busy machine). */
const STOPPED_WITHIN_MS = 5_000;
/**
 * tdl's safety exit (for handles left open) is pushed out to a minute in these tests, so that a
 * process that exits well before it provably closed everything itself.
 */
const EXIT_GRACE_MS = 60_000;
const ENDS_ON_ITS_OWN_MS = 15_000;

let dir: string;
let cleanup: () => Promise<void>;
const closers: (() => Promise<void> | void)[] = [];

beforeAll(() => {
  if (!existsSync(MAIN)) {
    throw new Error(`${MAIN} is missing: build the CLI first with \`npm run build\``);
  }
});

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-signals-'));
});

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
  await cleanup();
});

/** `child`, spawned in a process group of its own, is killed (group and all) after the test. */
function killAfterTest(child: ChildProcess): void {
  closers.push(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** Spawns the CLI in its own process group; it is killed (group and all) after the test. */
function spawnCli(args: string[]): {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
} {
  const child = spawn(process.execPath, [MAIN, ...args], {
    detached: true,
    env: { ...process.env, TDL_EXIT_GRACE_MS: String(EXIT_GRACE_MS) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    let nl: number;
    while ((nl = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, nl);
      stdout = stdout.slice(nl + 1);
      if (line.startsWith('{')) lines.push(checkEvent(JSON.parse(line) as Record<string, unknown>));
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>(
    (resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  killAfterTest(child);
  return { child, lines, stderr: () => stderr, exited };
}

async function until<T>(get: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * A tracker answering with `peers()` that records when each event arrived, a throttled seeder,
 * and the torrent pointing at the tracker.
 */
async function setup(o: { extraPeers?: PeerAddress[]; ignoreStopped?: boolean } = {}) {
  const heard: { event: string; at: number }[] = [];
  const peers: PeerAddress[] = [];
  const tr = await startHttpTracker({
    handler: (req: http.IncomingMessage, res: http.ServerResponse) => {
      const a = parseHttpAnnounce(req.url ?? '');
      heard.push({ event: a?.event ?? '', at: Date.now() });
      if (o.ignoreStopped && a?.event === 'stopped') return; // never answers
      res.end(encode({ interval: 1800, peers: compactPeers(peers, 4) }));
    },
  });
  closers.push(() => tr.close());
  const t = makeTorrent({ name: 'sig.bin', pieceLength: PIECE, files: { data }, announce: tr.url });
  const seeder = await startFakeSeeder({
    infoHash: t.infoHash,
    data,
    pieceLength: PIECE,
    rateLimit: RATE,
  });
  closers.push(() => seeder.close());
  peers.push(seeder.address, ...(o.extraPeers ?? []));
  const torrent = path.join(dir, 'sig.torrent');
  await writeFile(torrent, t.torrent);
  return { t, heard, torrent, out: path.join(dir, 'sig.bin') };
}

/** Pieces on disk that hold exactly the torrent's bytes (wherever the output file is). */
async function verifiedOnDisk(out: string, hashes: Buffer[]): Promise<number[]> {
  const file = [out, `${out}.part`].find((p) => existsSync(p));
  if (!file) return [];
  const bytes = await readFile(file);
  const good: number[] = [];
  hashes.forEach((h, i) => {
    const piece = bytes.subarray(i * PIECE, (i + 1) * PIECE);
    if (createHash('sha1').update(piece).digest().equals(h)) {
      // Compare the byte range itself, not just its hash.
      expect(piece.equals(data.subarray(i * PIECE, (i + 1) * PIECE))).toBe(true);
      good.push(i);
    }
  });
  return good;
}

const sha1s = (pieces: Buffer[]) => pieces.map((p) => createHash('sha1').update(p).digest());

async function interruptMidDownload(sig: 'SIGINT' | 'SIGTERM' | 'SIGHUP', code: number) {
  const { t, heard, torrent, out } = await setup();
  const run = spawnCli(['download', torrent, '-o', out, '--json']);
  // Wait until a few pieces are verified (progress events come every 250 ms).
  const progress = await until(
    () => {
      const p = run.lines.filter((e) => e['event'] === 'progress').at(-1);
      return p && Number(p['piecesDone']) >= 4 ? p : undefined;
    },
    10_000,
    'four verified pieces',
  );
  expect(Number(progress['piecesDone'])).toBeLessThan(t.pieces.length);
  expect(heard.some((h) => h.event === 'started')).toBe(true);
  const killedAt = Date.now();
  process.kill(run.child.pid!, sig);
  // Nothing was left open: the process ended on its own, long before its safety exit.
  const exit = await within(run.exited, ENDS_ON_ITS_OWN_MS, 'exit after the signal');

  expect({ code: exit.code, signal: exit.signal }).toEqual({ code, signal: null });
  expect(run.stderr()).toContain(`interrupted by ${sig}`);
  const error = run.lines.find((e) => e['event'] === 'error');
  expect(error).toMatchObject({ kind: 'interrupted', exitCode: code });
  // The tracker heard `stopped`, soon.
  const stopped = heard.find((h) => h.event === 'stopped');
  expect(stopped, 'the tracker never heard stopped').toBeDefined();
  expect(stopped!.at - killedAt).toBeLessThan(STOPPED_WITHIN_MS);
  // Every piece reported verified before the signal is on disk, byte for byte.
  const onDisk = await verifiedOnDisk(out, sha1s(t.pieces));
  expect(onDisk.length).toBeGreaterThanOrEqual(Number(progress['piecesDone']));
  expect(onDisk.length).toBeLessThan(t.pieces.length);
}

describe('signals, against the built CLI in a child process', () => {
  it('SIGINT mid-download: exit 130, stopped sent, verified pieces kept', async () => {
    await interruptMidDownload('SIGINT', 130);
  });

  it('SIGTERM mid-download: exit 143, stopped sent, verified pieces kept', async () => {
    await interruptMidDownload('SIGTERM', 143);
  });

  it('SIGHUP (its terminal closed) mid-download: exit 129, stopped sent, verified pieces kept', async () => {
    await interruptMidDownload('SIGHUP', 129);
  });

  it('SIGUSR1 is ignored: no debugger port, nothing said, the download goes on', async () => {
    const { t, torrent, out } = await setup();
    const run = spawnCli(['download', torrent, '-o', out, '--json', '-q']);
    await until(() => run.lines.find((e) => e['event'] === 'progress'), 10_000, 'a progress event');
    process.kill(run.child.pid!, 'SIGUSR1');
    const exit = await within(run.exited, 60_000, 'the end of the download');
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect(run.stderr()).toBe('');
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(run.lines.at(-1)).toMatchObject({ event: 'done' });
    expect(t.pieces.length).toBeGreaterThan(4);
  });

  it('SIGINT also closes a connection still waiting for its handshake', async () => {
    const mute = await startHostilePeer(async (c) => {
      await c.closed;
    });
    closers.push(() => mute.close());
    const { torrent, out } = await setup({ extraPeers: [mute.address] });
    const run = spawnCli(['download', torrent, '-o', out, '--json']);
    await until(() => mute.conns[0], 10_000, 'a connection to the silent peer');
    await until(
      () => run.lines.find((e) => e['event'] === 'progress' && Number(e['piecesDone']) >= 1),
      10_000,
      'a verified piece',
    );
    const killedAt = Date.now();
    process.kill(run.child.pid!, 'SIGINT');
    // The half-open connection was closed by tdl's shutdown: left open, it would have kept the
    // process alive until its safety exit, a minute away.
    const exit = await within(run.exited, ENDS_ON_ITS_OWN_MS, 'exit after the signal');
    expect(exit.code).toBe(130);
    await within(mute.conns[0]!.closed, 5_000, 'the close of the half-open connection');
    expect(mute.conns[0]!.closedAt! - killedAt).toBeLessThan(ENDS_ON_ITS_OWN_MS);
  });

  it('a tracker that never answers `stopped` holds the exit for a bounded time; a second signal ends it at once', async () => {
    for (const twice of [false, true]) {
      const { heard, torrent, out } = await setup({ ignoreStopped: true });
      const run = spawnCli(['download', torrent, '-o', `${out}-${String(twice)}`, '--json']);
      await until(
        () => run.lines.find((e) => e['event'] === 'progress' && Number(e['piecesDone']) >= 1),
        10_000,
        'a verified piece',
      );
      const killedAt = Date.now();
      process.kill(run.child.pid!, 'SIGTERM');
      await until(() => heard.find((h) => h.event === 'stopped'), 2_000, 'stopped');
      // A second signal counts from REPEAT_SIGNAL_MS (250 ms) after the first.
      await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 300 - Date.now())));
      if (twice) process.kill(run.child.pid!, 'SIGTERM');
      const exit = await within(run.exited, ENDS_ON_ITS_OWN_MS, 'exit after the signal');
      expect(exit.code).toBe(143);
      // The second signal does not wait for the 1.5 s bound on `stopped`, and says so.
      if (twice) expect(exit.at - killedAt).toBeLessThan(1_500);
      const again = 'tdl: SIGTERM again: exiting at once, without the final checkpoint\n';
      if (twice) expect(run.stderr()).toContain(again);
      else expect(run.stderr()).not.toContain('again');
    }
  });

  it('one signal delivered twice at once (`timeout`, a forwarding wrapper) is one stop, not a forced exit', async () => {
    // The tracker never answers `stopped`: the stop lasts its bound (1.5 s), time for the
    // second signal to come during it.
    const { heard, torrent, out } = await setup({ ignoreStopped: true });
    const run = spawnCli(['download', torrent, '-o', out, '--json']);
    await until(
      () => run.lines.find((e) => e['event'] === 'progress' && Number(e['piecesDone']) >= 1),
      10_000,
      'a verified piece',
    );
    // Two kills at once are often merged by the kernel into one: the second comes a moment
    // after the first has reached tdl, as from `timeout` (its child, then its process group).
    process.kill(run.child.pid!, 'SIGINT');
    const first = performance.now();
    await new Promise((r) => setTimeout(r, 30));
    process.kill(run.child.pid!, 'SIGINT');
    const gap = performance.now() - first;
    const exit = await within(run.exited, ENDS_ON_ITS_OWN_MS, 'exit after the signal');
    expect(exit, run.stderr()).toMatchObject({ code: 130 });
    // A machine so busy that the 30 ms became 250 ms sent a second Ctrl-C: nothing to check.
    if (gap >= 250) return;
    // The whole stop: its message, its event, `stopped`, the resume file, no lock left.
    expect(run.stderr()).toContain('interrupted by SIGINT');
    expect(run.lines.find((e) => e['event'] === 'error')).toMatchObject({ kind: 'interrupted' });
    expect(heard.some((h) => h.event === 'stopped')).toBe(true);
    expect(existsSync(`${out}.tdl-resume`)).toBe(true);
    expect(existsSync(`${out}.tdl-lock`)).toBe(false);
  });

  it('its terminal closed (SIGHUP from a pty hang-up): exit 129, no crash, progress kept', async () => {
    const { torrent, out } = await setup();
    // tdl in a pseudo-terminal (stdin, stdout and stderr), whose other end is closed once a
    // few pieces came: the kernel hangs it up and sends SIGHUP, as when a terminal window is
    // closed. Node 20 aborted at exit when it could not restore the gone terminal's settings.
    const host = [
      'import os, pty, sys, time, select',
      'pid, fd = pty.fork()',
      'if pid == 0:',
      '    os.execv(sys.argv[1], sys.argv[1:])',
      'seen = b""',
      'end = time.time() + 20',
      'while time.time() < end and seen.count(b"%") < 3:',
      '    r, _, _ = select.select([fd], [], [], 0.05)',
      '    if r:',
      '        try: seen += os.read(fd, 65536)',
      '        except OSError: break',
      'os.close(fd)',
      '_, st = os.waitpid(pid, 0)',
      'print("status", os.waitstatus_to_exitcode(st))',
    ].join('\n');
    const child = spawn(
      'python3',
      ['-c', host, process.execPath, MAIN, 'download', torrent, '-o', out],
      { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    killAfterTest(child);
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    await within(new Promise((resolve) => child.once('exit', resolve)), 40_000, 'the hang-up');
    // 129, as SIGHUP is documented; a crash would be -6 (SIGABRT) or -11 (SIGSEGV).
    expect(stdout.trim()).toBe('status 129');
    const d = decodeResume(await readFile(`${out}.tdl-resume`));
    if (!d.ok) throw new Error(d.reason);
    expect(d.state.have.count).toBeGreaterThan(0);
    expect(existsSync(`${out}.tdl-lock`)).toBe(false);
  });

  it('--json into a reader that stops taking: waited for while it reads, never exit 0 when dropped', async () => {
    // Dead addresses (from the tracker) give events enough to fill the pipe.
    const dead = Array.from({ length: 40 }, (_, i) => ({ host: `127.0.0.${2 + i}`, port: 9 }));
    const { torrent, out } = await setup({ extraPeers: dead });
    // A 4 KiB pipe (what a user over pipe-user-pages-soft gets) from tdl to a reader that waits
    // `wait` seconds, then reads everything, 512 bytes every 50 ms when `slow`.
    const host = String.raw`
import fcntl, os, subprocess, sys, time
wait, mode = float(sys.argv[1]), sys.argv[2]
r, w = os.pipe()
fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ
p = subprocess.Popen(sys.argv[3:], stdout=w, stderr=subprocess.PIPE)
os.close(w)
time.sleep(wait)
data = b""
while True:
    if mode == "slow":
        time.sleep(0.05)
    b = os.read(r, 512 if mode == "slow" else 65536)
    if not b:
        break
    data += b
err = p.stderr.read().decode()
last = data.rstrip(b"\n").split(b"\n")[-1][:40].decode()
print(p.wait(), last, err.strip()[-80:], sep="|")
`;
    const runIt = (wait: number, mode: string, o: string) =>
      new Promise<string[]>((resolve) => {
        const args = ['download', torrent, '-o', o, '--json', '--no-dht', '--no-listen'];
        const child = spawn(
          'python3',
          ['-c', host, String(wait), mode, process.execPath, MAIN, ...args],
          {
            detached: true,
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        killAfterTest(child);
        let text = '';
        child.stdout.setEncoding('utf8').on('data', (x: string) => (text += x));
        child.once('exit', () => resolve(text.trim().split('|')));
      });
    // Slow but reading: every event comes, `done` last, exit 0.
    const [code, last] = await within(runIt(0, 'slow', out), 60_000, 'the slow reader');
    expect(code).toBe('0');
    expect(last).toContain('"event":"done"');
    // Nothing taken from before the end of the download (about 8 s) until long after it: what
    // is left is dropped after 2 s without progress, and the exit code says so.
    const stuck = await within(runIt(20, 'stuck', `${out}-2`), 60_000, 'the stuck reader');
    expect(stuck[0]).toBe('141');
    expect(stuck[2]).toMatch(/standard output took nothing for 2 s: \d+ bytes of output dropped$/);
  }, 150_000);

  it('a closed stdout (`--json | head -1`) ends the run like Ctrl-C: exit 141, resume file saved, stopped sent', async () => {
    const { t, heard, torrent, out } = await setup();
    // `head -1` takes the first event and exits; the pipe stays open for the `sleep` (so the
    // download gets going), then the next event written meets a closed pipe.
    const script =
      `"$0" "$1" download "$2" -o "$3" --json | { head -1; sleep 2; }; ` +
      'echo "exit=${PIPESTATUS[0]}" >&2';
    const child = spawn('bash', ['-c', script, process.execPath, MAIN, torrent, out], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    killAfterTest(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    await within(
      new Promise((resolve) => child.once('exit', resolve)),
      20_000,
      'the end of the pipeline',
    );
    expect(stderr).toContain('exit=141');
    expect(stderr).toContain('standard output was closed');
    expect(checkEvent(JSON.parse(stdout.split('\n')[0]!))).toMatchObject({ event: 'started' });
    // The run stopped mid-way: partial data, an intact resume file recording what is on disk.
    const d = decodeResume(await readFile(`${out}.tdl-resume`));
    if (!d.ok) throw new Error(d.reason);
    const onDisk = await verifiedOnDisk(out, sha1s(t.pieces));
    expect(onDisk.length).toBeLessThan(t.pieces.length);
    for (let i = 0; i < t.pieces.length; i++) {
      if (d.state.have.has(i)) expect(onDisk).toContain(i);
    }
    expect(heard.some((h) => h.event === 'stopped')).toBe(true);
  });
});
