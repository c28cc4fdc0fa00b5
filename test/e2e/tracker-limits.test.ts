/**
 * A torrent that lists very many trackers (tracker lists pasted in by the thousand): tdl uses
 * the first MAX_TRACKERS of them and keeps at most `announceSlots` of the open-file limit in
 * flight, so silent trackers cannot use up the process's file descriptors, and under the usual
 * limit a working tracker listed after dozens of silent ones is not kept waiting by them.
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type http from 'node:http';
import { describe, expect, it } from 'vitest';
import { encode } from '../../src/metainfo/bencode.js';
import { fdLimit } from '../../src/fd-limit.js';
import {
  Announcer,
  announceSlots,
  MAX_ANNOUNCES_IN_FLIGHT,
  MAX_TRACKERS,
  type AnnouncerOptions,
} from '../../src/tracker/announcer.js';
import type { FakeSeeder } from '../helpers/fake-seeder.js';
import { startHttpTracker, testAnnouncer, type FakeTracker } from '../helpers/fake-tracker.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, killWithTest, MAIN } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const infoHash = Buffer.alloc(20, 0x43);
const peerId = Buffer.from('-TD0001-limits000000', 'latin1');
const REPLY = encode({ interval: 1800, peers: Buffer.alloc(0) });

function announcer(opts: Partial<AnnouncerOptions> & { announceList: string[][] }): Announcer {
  return testAnnouncer({ infoHash, peerId, ...opts }, fx.onClose);
}

/**
 * An HTTP tracker that holds every announce until `answer()` (or answers at once after
 * `answerAll()`); `held` counts those held, `paths` lists the paths asked, in order.
 */
async function holdingTracker(): Promise<{
  base: string;
  tr: FakeTracker;
  paths: string[];
  held: () => number;
  maxHeld: () => number;
  answer: (path?: string) => void;
  answerAll: () => void;
}> {
  const waiting: { path: string; res: http.ServerResponse }[] = [];
  const paths: string[] = [];
  let maxHeld = 0;
  let open = false;
  const tr = await startHttpTracker({
    handler: (req, res) => {
      const p = (req.url ?? '').split('?')[0]!;
      paths.push(p);
      if (open) return void res.end(REPLY);
      waiting.push({ path: p, res });
      maxHeld = Math.max(maxHeld, waiting.length);
    },
  });
  fx.onClose(() => tr.close());
  const answer = (p?: string): void => {
    const i = p === undefined ? 0 : waiting.findIndex((w) => w.path === p);
    if (i < 0 || i >= waiting.length) throw new Error(`no announce held for ${p}`);
    // Counted out before the reply leaves: the client frees its slot only once it has it.
    waiting.splice(i, 1)[0]!.res.end(REPLY);
  };
  return {
    base: tr.url.replace(/\/announce$/, ''),
    tr,
    paths,
    held: () => waiting.length,
    maxHeld: () => maxHeld,
    answer,
    answerAll: () => {
      open = true;
      while (waiting.length > 0) answer();
    },
  };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Announcer limits', () => {
  it('announces in flight: a quarter of the open-file limit, from 64 up to every tracker used', () => {
    expect(announceSlots(64)).toBe(MAX_ANNOUNCES_IN_FLIGHT);
    expect(announceSlots(256)).toBe(64);
    expect(announceSlots(600)).toBe(150);
    expect(announceSlots(1024)).toBe(MAX_TRACKERS);
    expect(announceSlots(1_048_576)).toBe(MAX_TRACKERS);
    const a = announcer({ announceList: [] });
    expect(a.maxInFlight).toBe(announceSlots(fdLimit()));
  });

  it(`keeps at most maxInFlight (${MAX_ANNOUNCES_IN_FLIGHT} under ulimit -n 256) announces in flight; the others wait their turn`, async () => {
    const h = await holdingTracker();
    const n = MAX_ANNOUNCES_IN_FLIGHT + 18;
    const a = announcer({
      announceList: Array.from({ length: n }, (_, i) => [`${h.base}/${i}`]),
      maxInFlight: MAX_ANNOUNCES_IN_FLIGHT,
      // Held announces must not time out on a busy machine: the test frees them.
      announceTimeoutMs: 60_000,
    });
    a.start();
    await until(() => h.held() >= MAX_ANNOUNCES_IN_FLIGHT, 15_000, 'the first announces');
    // Time for more to come, had they not been queued.
    await sleep(500);
    expect(h.held()).toBe(MAX_ANNOUNCES_IN_FLIGHT);
    // First come first served: the first tiers went first.
    expect(new Set(h.paths)).toEqual(
      new Set(Array.from({ length: MAX_ANNOUNCES_IN_FLIGHT }, (_, i) => `/${i}`)),
    );
    // Each answer lets one more out.
    h.answer('/3');
    await until(() => h.paths.length === MAX_ANNOUNCES_IN_FLIGHT + 1, 15_000, 'the next one');
    expect(h.paths.at(-1)).toBe(`/${MAX_ANNOUNCES_IN_FLIGHT}`);
    h.answerAll();
    await until(() => h.paths.length === n, 15_000, 'every tracker asked');
    expect(h.maxHeld()).toBe(MAX_ANNOUNCES_IN_FLIGHT);
    expect(new Set(h.paths).size).toBe(n);
  });

  it('trackers that answered before go ahead of those waiting (completed, re-announces)', async () => {
    const h = await holdingTracker();
    const a = announcer({
      announceList: [[`${h.base}/good`], [`${h.base}/silent1`], [`${h.base}/silent2`]],
      maxInFlight: 1,
      announceTimeoutMs: 60_000,
      stopTimeoutMs: 60_000,
    });
    const acked = new Set<string>();
    a.on('announce', (url) => acked.add(url));
    a.start();
    await until(() => h.held() === 1, 15_000, 'the first announce');
    expect(h.paths).toEqual(['/good']);
    h.answer('/good');
    await until(() => acked.size === 1 && h.paths.length === 2, 15_000, 'the second announce');
    expect(h.paths).toEqual(['/good', '/silent1']);
    // /silent2 waits for the slot; `completed` to the tracker that answered goes before it.
    const completed = a.complete();
    h.answer('/silent1');
    await until(() => h.paths.length === 3, 15_000, 'the third announce');
    expect(h.paths[2]).toBe('/good');
    expect(h.tr.announces[2]?.event).toBe('completed');
    h.answer('/good');
    await completed;
    await until(() => h.paths.length === 4, 15_000, 'the last announce');
    expect(h.paths[3]).toBe('/silent2');
    h.answerAll();
    await until(() => acked.size === 3, 15_000, 'every tracker answered');
    await a.stop();
    expect(h.tr.announces.map((x) => x.event)).toEqual([
      'started',
      'started',
      'completed',
      'started',
      'stopped',
      'stopped',
      'stopped',
    ]);
  });

  it(`uses the first ${MAX_TRACKERS} usable trackers, in tier order, and says how many were left out`, async () => {
    const h = await holdingTracker();
    h.answerAll();
    const extra = 30;
    // Unusable and duplicate URLs do not count (a tier left empty by them goes too).
    const tiers: string[][] = [];
    for (let i = 0; i < MAX_TRACKERS + extra; i++) {
      tiers.push(['wss://tracker.example/announce', `${h.base}/${i}`]);
      tiers.push([`${h.base}/${i}`, 'not a url']);
    }
    const a = announcer({ announceList: tiers });
    const warnings: string[] = [];
    a.on('warning', (m) => warnings.push(m));
    expect(a.trackerCount).toBe(MAX_TRACKERS);
    a.start();
    expect(warnings).toEqual([
      `${MAX_TRACKERS + extra} trackers: announcing to the first ${MAX_TRACKERS}, ${extra} more were left out`,
    ]);
    await until(() => h.paths.length >= MAX_TRACKERS, 15_000, 'every tracker asked');
    await sleep(300);
    expect(new Set(h.paths)).toEqual(
      new Set(Array.from({ length: MAX_TRACKERS }, (_, i) => `/${i}`)),
    );
  });

  it('warns once about a tracker that keeps failing the same way, again after it answered', async () => {
    let n = 0;
    const tr = await startHttpTracker({
      handler: (_req, res) => {
        n++;
        const reply =
          n === 4
            ? { interval: 1, peers: Buffer.alloc(0) }
            : { 'failure reason': 'unregistered torrent' };
        res.end(encode(reply));
      },
    });
    fx.onClose(() => tr.close());
    const a = announcer({
      announceList: [[tr.url]],
      timing: { retryAfterFailureMs: 20, maxRetryAfterFailureMs: 20, minReannounceMs: 20 },
    });
    const warnings: string[] = [];
    a.on('warning', (m, url) => {
      if (url === tr.url) warnings.push(m);
    });
    a.start();
    await until(() => n >= 7, 15_000, 'failures after the answer');
    await a.stop();
    expect(warnings).toHaveLength(2);
    for (const w of warnings) expect(w).toContain('unregistered torrent');
  });
});

/**
 * A UDP socket on 127.0.0.1 that reads every datagram and answers none; `mostFromOne` is the
 * largest number of datagrams from one source port (one announce: each has its own socket).
 */
async function silentUdp(): Promise<{
  port: number;
  packets: () => number;
  mostFromOne: () => number;
}> {
  const socket = dgram.createSocket('udp4');
  let packets = 0;
  const bySource = new Map<number, number>();
  socket.on('message', (_msg, rinfo) => {
    packets++;
    bySource.set(rinfo.port, (bySource.get(rinfo.port) ?? 0) + 1);
  });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  fx.onClose(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return {
    port: socket.address().port,
    packets: () => packets,
    mostFromOne: () => Math.max(0, ...bySource.values()),
  };
}

/** The built CLI under `ulimit -n <fds>`; killed (its process group) after the test. */
function runLimited(
  fds: number,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const quoted = [MAIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('bash', ['-c', `ulimit -n ${fds} && exec "$0" ${quoted}`, process.execPath], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DEBUG: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 1 << 20) stderr += s;
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  killWithTest(child, exited, fx.onClose);
  return exited.then((code) => ({ code, stdout, stderr }));
}

/**
 * `tdl download` under `ulimit -n 1024` of `data` in a torrent announcing to `tiers`, from one
 * in-process seeder (added to `seeders`, which the working tracker lists): exit 0, the bytes
 * right, no descriptor ran out.
 */
async function downloadLimited(data: Buffer, tiers: string[][], seeders: FakeSeeder[]) {
  const t = makeTorrent({
    name: 'data.bin',
    pieceLength: 32768,
    files: { data },
    announce: tiers[0]![0]!,
    announceList: tiers,
  });
  seeders.push(await fx.seeder(t, 32768));
  const out = path.join(fx.dir, 'data.bin');
  const torrent = await fx.writeTorrent(t);
  const args = ['download', torrent, '-o', out, '--no-dht', '--port', '0', '--timeout', '60'];
  const r = await runLimited(1024, args);
  expect(r.code, r.stderr).toBe(0);
  expect((await readFile(out)).equals(data)).toBe(true);
  expect(r.stderr).not.toMatch(/EMFILE|too many open files/i);
  return r;
}

describe('a torrent with a thousand trackers', () => {
  it('downloads under ulimit -n 1024 when all but one of them never answer', async () => {
    assertBuilt();
    const silent = await silentUdp();
    const data = randomBytesSeeded(256 * 1024, 'tracker-limits');
    const seeders: FakeSeeder[] = [];
    const good = await fx.tracker(() => seeders);
    const SILENT = 1500;
    // Each tracker its own tier, as tracker lists are usually pasted in; the working one among
    // the first (the ones kept), the silent ones all on one socket, told apart by their paths.
    const tiers = Array.from({ length: SILENT }, (_, i) => [
      `udp://127.0.0.1:${silent.port}/${i}/announce`,
    ]);
    tiers.splice(5, 0, [good.url]);
    const r = await downloadLimited(data, tiers, seeders);
    // One warning says how many trackers were left out; no line per tracker.
    const left = SILENT + 1 - MAX_TRACKERS;
    expect(r.stderr).toContain(`${left} more were left out`);
    expect(r.stderr.split('\n').length).toBeLessThan(50);
    // The silent trackers were asked (their socket got datagrams), only not all at once.
    expect(silent.packets()).toBeGreaterThan(0);
  });

  it('under ulimit -n 1024, a working tracker listed after 150 silent ones is asked at once', async () => {
    assertBuilt();
    const silent = await silentUdp();
    const data = randomBytesSeeded(256 * 1024, 'tracker-limits-late');
    const seeders: FakeSeeder[] = [];
    // The most datagrams any one silent tracker had been sent when the working one was asked:
    // a silent UDP tracker is given up after its 4th (22 s), and only then would its slot go to
    // a tracker waiting for one.
    let triesBefore = -1;
    const good = await fx.tracker(() => {
      if (triesBefore < 0) triesBefore = silent.mostFromOne();
      return seeders;
    });
    const SILENT = 150;
    const tiers = Array.from({ length: SILENT }, (_, i) => [
      `udp://127.0.0.1:${silent.port}/${i}/announce`,
    ]);
    tiers.push([good.url]);
    await downloadLimited(data, tiers, seeders);
    expect(triesBefore).toBeGreaterThanOrEqual(0);
    expect(triesBefore).toBeLessThan(4);
  });
});
