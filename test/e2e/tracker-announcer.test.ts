import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Announcer, type AnnouncerOptions } from '../../src/tracker/announcer.js';
import type { PeerAddress } from '../../src/tracker/types.js';
import {
  parseHttpAnnounce,
  startHttpTracker,
  startUdpTracker,
  testAnnouncer,
  type FakeTracker,
} from '../helpers/fake-tracker.js';
import { encode } from '../../src/metainfo/bencode.js';

const infoHash = Buffer.alloc(20, 0x42);
/**
 * Bounds on what should take well under a second but must hold on a busy 2-core machine: far
 * below what the behaviour under test prevents (10 s request timeouts, 22 s of UDP retries, a
 * 30 min interval), far above the few hundred ms it takes. Speed belongs in `npm run bench`.
 */
const BOUNDED_MS = 8_000;
const DEAD_TIER_MS = 10_000;
const peerId = Buffer.from('-TD0001-announcer000', 'latin1');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function http_(opts: Parameters<typeof startHttpTracker>[0]): Promise<FakeTracker> {
  const t = await startHttpTracker(opts);
  cleanups.push(() => t.close());
  return t;
}
async function udp_(opts: Parameters<typeof startUdpTracker>[0]): Promise<FakeTracker> {
  const t = await startUdpTracker(opts);
  cleanups.push(() => t.close());
  return t;
}

function announcer(opts: Partial<AnnouncerOptions> & { announceList: string[][] }): Announcer {
  return testAnnouncer({ infoHash, peerId, ...opts }, (c) => cleanups.push(c));
}

async function closedTcpPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function nextPeers(a: Announcer, ms: number): Promise<{ peers: PeerAddress[]; url: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no peers within ${ms} ms`)), ms);
    a.once('peers', (peers, url) => {
      clearTimeout(timer);
      resolve({ peers, url });
    });
  });
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Announcer', () => {
  it('a dead first tier does not delay peers from a working second tier', async () => {
    const closed = await closedTcpPort();
    const silentUdp = await udp_({ dropFirst: Infinity });
    const good = await http_({ peers: [{ host: '127.0.0.1', port: 7001 }] });
    // Default timing and retry schedule: what a user gets.
    const a = announcer({
      announceList: [[`http://127.0.0.1:${closed}/announce`, silentUdp.url], [good.url]],
    });
    const warnings: string[] = [];
    a.on('warning', (m) => warnings.push(m));
    // Tiers run in parallel: waiting for the dead tier would take its UDP retries (2 + 4 + 8 + 8
    // s) or the 3 s hedge first. How fast peers come is measured by `npm run bench`.
    const started = Date.now();
    const got = nextPeers(a, 15_000);
    a.start();
    const { peers, url } = await got;
    expect(Date.now() - started).toBeLessThan(DEAD_TIER_MS);
    expect(url).toBe(good.url);
    expect(peers).toEqual([{ host: '127.0.0.1', port: 7001 }]);
    expect(good.announces[0]?.event).toBe('started');
    expect(a.trackerCount).toBe(3);
    expect(a.allFailed).toBe(false);

    // stop() is bounded (1.5 s by default) even with a silent tracker in flight.
    const stopStart = Date.now();
    await a.stop();
    expect(Date.now() - stopStart).toBeLessThan(BOUNDED_MS);
    expect(good.announces.map((x) => x.event)).toEqual(['started', 'stopped']);
    // Whichever tier-1 tracker was asked first (the tier is shuffled) may have failed by now.
    expect(a.failures.every((f) => f.url !== good.url)).toBe(true);
    expect(warnings.every((w) => !w.includes(good.url))).toBe(true);
  });

  it('leaves our own address (one of our interfaces, our port) out of the peers', async () => {
    const t = await http_({
      peers: [
        { host: '127.0.0.1', port: 6881 },
        { host: '127.0.0.1', port: 7011 },
        { host: '192.0.2.1', port: 6881 },
      ],
    });
    const a = announcer({ announceList: [[t.url]] });
    const got = nextPeers(a, 15_000);
    a.start();
    expect((await got).peers).toEqual([
      { host: '127.0.0.1', port: 7011 },
      { host: '192.0.2.1', port: 6881 },
    ]);
  });

  it('a silent tracker in a tier does not hold back the next one (hedging)', async () => {
    const silentUdp = await udp_({ dropFirst: Infinity });
    const good = await http_({ peers: [{ host: '127.0.0.1', port: 7010 }], warning: 'be nice' });
    const a = announcer({
      announceList: [[silentUdp.url, good.url]],
      timing: { hedgeMs: 300 },
    });
    const warnings: [string, string][] = [];
    a.on('warning', (m, url) => warnings.push([m, url]));
    // Without hedging the good tracker would only be asked after the silent one's UDP retries.
    const started = Date.now();
    const got = nextPeers(a, 15_000);
    a.start();
    expect((await got).url).toBe(good.url);
    expect(Date.now() - started).toBeLessThan(DEAD_TIER_MS);
    expect(warnings).toContainEqual([`tracker ${good.url}: be nice`, good.url]);
  });

  it("a tracker's warning message names the tracker, once while it repeats it", async () => {
    let n = 0;
    const t = await http_({
      handler: (_req, res) => {
        n++;
        const warning = n <= 3 ? 'be nice' : 'slow down';
        res.end(encode({ interval: 1, 'warning message': warning, peers: Buffer.alloc(0) }));
      },
    });
    const a = announcer({ announceList: [[t.url]], timing: { minReannounceMs: 20 } });
    const warnings: string[] = [];
    a.on('warning', (m, url) => {
      if (url === t.url) warnings.push(m);
    });
    a.start();
    await until(() => n >= 5, 15_000, 'five announces');
    await a.stop();
    expect(warnings).toEqual([`tracker ${t.url}: be nice`, `tracker ${t.url}: slow down`]);
  });

  it('stop() sends stopped and returns within its bound when the tracker does not answer', async () => {
    const seen: (string | undefined)[] = [];
    const t = await http_({
      handler: (req, res) => {
        const q = parseHttpAnnounce(req.url ?? '');
        seen.push(q?.event);
        if (q?.event === 'stopped') return; // never answers
        const body = encode({ interval: 1800, peers: Buffer.from([127, 0, 0, 1, 0x1b, 0x59]) });
        res.end(body);
      },
    });
    const a = announcer({ announceList: [[t.url]], stopTimeoutMs: 300 });
    const got = nextPeers(a, 15_000);
    a.start();
    await got;
    const started = Date.now();
    await a.stop();
    // Bounded: without the bound it would wait for the 10 s request timeout.
    expect(Date.now() - started).toBeLessThan(BOUNDED_MS);
    expect(seen).toEqual(['started', 'stopped']);
    // A second stop() is the same call.
    await a.stop();
  });

  it('a tracker that left completed unanswered is not sent stopped: the end waits once', async () => {
    const seen: (string | undefined)[] = [];
    const t = await http_({
      handler: (req, res) => {
        const q = parseHttpAnnounce(req.url ?? '');
        seen.push(q?.event);
        if (q?.event === 'completed' || q?.event === 'stopped') return; // never answers
        res.end(encode({ interval: 1800, peers: Buffer.from([127, 0, 0, 1, 0x1b, 0x59]) }));
      },
    });
    const a = announcer({ announceList: [[t.url]], stopTimeoutMs: 300 });
    const got = nextPeers(a, 15_000);
    a.start();
    await got;
    await a.complete();
    await a.stop();
    expect(seen).toEqual(['started', 'completed']);
  });

  it('peers of another type in a reply are said as a warning', async () => {
    const t = await http_({
      handler: (_req, res) => res.end(encode({ interval: 1, 'min interval': 0, peers: 5 })),
    });
    const a = announcer({ announceList: [[t.url]] });
    const warnings: string[] = [];
    a.on('warning', (m) => warnings.push(m));
    let answers = 0;
    a.on('announce', () => answers++);
    a.start();
    await until(() => answers >= 1, 15_000, 'an answer');
    await a.stop();
    expect(warnings).toEqual([
      `tracker ${t.url}: its reply's \`peers\` is neither a string of addresses nor a list (ignored)`,
    ]);
  });

  it('stop() does not wait for a UDP tracker that stopped answering', async () => {
    const t = await udp_({ peers: [{ host: '127.0.0.1', port: 7002 }] });
    const a = announcer({ announceList: [[t.url]], stopTimeoutMs: 400 });
    const got = nextPeers(a, 15_000);
    a.start();
    await got;
    await t.close(); // now silent (ICMP unreachable or nothing)
    const started = Date.now();
    await a.stop();
    // Bounded: UDP retries alone would take 2 + 4 + 8 + 8 s.
    expect(Date.now() - started).toBeLessThan(BOUNDED_MS);
  });

  it('within a tier, a failing tracker falls back to the next, which moves to the front', async () => {
    const bad = await http_({ failure: 'go away' });
    const good = await http_({ peers: [{ host: '127.0.0.2', port: 7003 }], interval: 1 });
    const a = announcer({
      announceList: [[bad.url, good.url]],
      timing: { minReannounceMs: 200 },
    });
    const got = nextPeers(a, 15_000);
    a.start();
    expect((await got).url).toBe(good.url);
    // The periodic re-announce goes to the tracker that answered, without an event.
    await until(() => good.announces.length >= 2, 15_000, 'a re-announce');
    expect(good.announces[1]?.event).toBeUndefined();
    expect(a.failures.every((f) => f.url === bad.url)).toBe(true);
    if (bad.announces.length > 0) {
      expect(a.failures[0]?.message).toContain('go away');
      // After the good one answered, the bad one is not asked again.
      const badCount = bad.announces.length;
      await until(() => good.announces.length >= 3, 15_000, 'another re-announce');
      expect(bad.announces.length).toBe(badCount);
    }
    expect(a.allFailed).toBe(false);
  });

  it('every tier gets announced to in parallel; peers from each', async () => {
    const t1 = await http_({ peers: [{ host: '127.0.0.3', port: 7004 }] });
    const t2 = await udp_({ peers: [{ host: '127.0.0.4', port: 7005 }] });
    const a = announcer({ announceList: [[t1.url], [t2.url]] });
    const from = new Map<string, PeerAddress[]>();
    a.on('peers', (peers, url) => from.set(url, peers));
    const announced: string[] = [];
    a.on('announce', (url) => announced.push(url));
    a.start();
    await until(() => from.size === 2, 15_000, 'peers from both tiers');
    expect(from.get(t1.url)).toEqual([{ host: '127.0.0.3', port: 7004 }]);
    expect(from.get(t2.url)).toEqual([{ host: '127.0.0.4', port: 7005 }]);
    expect(announced.sort()).toEqual([t1.url, t2.url].sort());
  });

  it('reports allFailed and the failures when no tracker works, never throwing', async () => {
    const closed = await closedTcpPort();
    const bad = await http_({ failure: 'unregistered torrent' });
    const errUdp = await udp_({ errorMessage: 'udp says no' });
    const a = announcer({
      announceList: [
        [`http://127.0.0.1:${closed}/a`, 'wss://tracker.example/announce'],
        [bad.url, 'not a url', errUdp.url],
        ['ws://x.example'],
      ],
      timing: { retryAfterFailureMs: 100 },
    });
    expect(a.trackerCount).toBe(3);
    let fired = 0;
    a.on('allFailed', () => fired++);
    a.start();
    await until(() => a.allFailed, 15_000, 'allFailed');
    expect(fired).toBe(1);
    const byUrl = new Map(a.failures.map((f) => [f.url, f.message]));
    expect(byUrl.get(bad.url)).toContain('unregistered torrent');
    expect(byUrl.get(errUdp.url)).toContain('udp says no');
    expect(byUrl.get(`http://127.0.0.1:${closed}/a`)).toMatch(/ECONNREFUSED/);
    // Failed tiers are retried (after retryAfterFailureMs).
    await until(() => bad.announces.length >= 2, 15_000, 'a retry');
    expect(bad.announces.every((x) => x.event === 'started')).toBe(true);
  });

  it('with no usable tracker, allFailed is true at once', () => {
    const a = announcer({ announceList: [['wss://a.example'], []] });
    expect(a.trackerCount).toBe(0);
    expect(a.allFailed).toBe(true);
    a.start();
  });

  it('requestMore re-announces sooner, but not before min interval', async () => {
    const t = await http_({
      peers: [{ host: '127.0.0.5', port: 7006 }],
      interval: 1800,
      minInterval: 1,
    });
    const a = announcer({ announceList: [[t.url]], timing: { requestMoreMinMs: 100 } });
    const got = nextPeers(a, 15_000);
    a.start();
    await got;
    const answeredAt = Date.now();
    a.requestMore();
    a.requestMore();
    await until(() => t.announces.length >= 2, 15_000, 'the early re-announce');
    const waited = Date.now() - answeredAt;
    // Not before min interval (1 s; timers never fire early), long before the interval (30 min).
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(BOUNDED_MS);
    expect(t.announces).toHaveLength(2);
    expect(t.announces[1]?.event).toBeUndefined();
  });

  it('a tracker that lists more peers than tdl takes: each answer is read on from the last', async () => {
    const many = Array.from({ length: 1200 }, (_, i) => ({
      host: `10.1.${i >> 8}.${i & 255}`,
      port: 7000,
    }));
    for (const make of [http_, udp_]) {
      const t = await make({ peers: many, interval: 1800, minInterval: 0 });
      const a = announcer({
        announceList: [[t.url]],
        timing: { requestMoreMinMs: 50, requestMoreDefaultMs: 50 },
      });
      const first = nextPeers(a, 15_000);
      a.start();
      expect((await first).peers[0]).toEqual(many[0]);
      const second = nextPeers(a, 15_000);
      a.requestMore();
      expect((await second).peers[0]).toEqual(many[500]);
      const third = nextPeers(a, 15_000);
      a.requestMore();
      // Round the list: the one after 1,000 comes first, then the start again.
      const last = (await third).peers;
      expect(last[0]).toEqual(many[1000]);
      expect(last[200]).toEqual(many[0]);
      await a.stop();
    }
  });

  it('requestMore backs off from a tracker whose answers bring nothing new, even with min interval 0', async () => {
    let round = 0;
    const t = await http_({
      handler: (_req, res) => {
        round++;
        // No peer at first, then the same one again and again, then a new one.
        const peer = round >= 7 ? [127, 0, 0, 9, 0x1b, 0x5b] : [127, 0, 0, 8, 0x1b, 0x5b];
        const peers = Buffer.from(round === 1 ? [] : peer);
        res.end(encode({ interval: 1800, 'min interval': 0, peers }));
      },
    });
    const a = announcer({ announceList: [[t.url]], timing: { requestMoreMinMs: 100 } });
    const at: number[] = [];
    a.on('announce', () => at.push(Date.now()));
    a.start();
    // A download short of peers asks for more all the time.
    const more = setInterval(() => a.requestMore(), 20);
    try {
      await until(() => at.length >= 8, 20_000, 'eight answers');
    } finally {
      clearInterval(more);
    }
    const gaps = at.slice(1).map((x, i) => x - at[i]!);
    // Answer 1 (no peer) brings nothing new: the next is asked 200 ms after it; answer 2 (a
    // peer) is new: 100 ms; answers 3–6 (that peer again) bring nothing new: 200, 400, 800,
    // 1,600 ms; answer 7 brings a new peer: the 100 ms floor again. Timers never fire early.
    expect(gaps[0]).toBeGreaterThanOrEqual(195);
    expect(gaps[3]).toBeGreaterThanOrEqual(395);
    expect(gaps[4]).toBeGreaterThanOrEqual(795);
    expect(gaps[5]).toBeGreaterThanOrEqual(1595);
    expect(gaps[6]).toBeLessThan(gaps[5]!);
  });

  it('requestMore after a failure retries after a short delay', async () => {
    let answer = false;
    const t = await http_({
      handler: (_req, res) => {
        if (!answer) {
          res.writeHead(500);
          res.end();
          return;
        }
        res.end(encode({ interval: 1800, peers: Buffer.from([127, 0, 0, 6, 0x1b, 0x5b]) }));
      },
    });
    const a = announcer({
      announceList: [[t.url]],
      timing: { requestMoreMinMs: 200, retryAfterFailureMs: 60_000 },
    });
    a.start();
    await until(() => a.allFailed, 15_000, 'the first failure');
    answer = true;
    const got = nextPeers(a, 15_000);
    a.requestMore();
    expect((await got).peers).toEqual([{ host: '127.0.0.6', port: 7003 }]);
    expect(a.failures).toEqual([]);
    expect(t.announces.map((x) => x.event)).toEqual(['started', 'started']);
  });

  it('requestMore after failures in a row backs off too', async () => {
    const t = await http_({
      handler: (_req, res) => {
        res.writeHead(500);
        res.end();
      },
    });
    const a = announcer({
      announceList: [[t.url]],
      timing: { requestMoreMinMs: 100, retryAfterFailureMs: 60_000 },
    });
    a.start();
    // A download short of peers asks for more all the time.
    const more = setInterval(() => a.requestMore(), 20);
    try {
      await until(() => t.announces.length >= 4, 15_000, 'four tries');
      const t0 = Date.now();
      await until(() => t.announces.length >= 5, 15_000, 'a fifth try');
      // The fourth failure in a row is retried no sooner than 800 ms after it (100 ms before,
      // whatever the number of failures), and still retried.
      expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
    } finally {
      clearInterval(more);
    }
  });

  it('complete() sends completed with the stats of the moment', async () => {
    let left = 1000;
    const t = await http_({ peers: [] });
    const u = await udp_({ peers: [] });
    const a = announcer({
      announceList: [[t.url], [u.url]],
      stats: () => ({ uploaded: 5, downloaded: 1000 - left, left }),
    });
    // Wait for tdl to have the answers (not just for the trackers to have the requests): only
    // trackers that acknowledged `started` are sent `completed`.
    const acked = new Set<string>();
    a.on('announce', (url) => acked.add(url));
    a.start();
    await until(() => acked.size === 2, 15_000, 'started acknowledged');
    left = 0;
    await a.complete();
    for (const tr of [t, u]) {
      expect(tr.announces[1]).toMatchObject({ event: 'completed', left: 0, downloaded: 1000 });
    }
    await a.stop();
    expect(t.announces.map((x) => x.event)).toEqual(['started', 'completed', 'stopped']);
    expect(u.announces.map((x) => x.event)).toEqual(['started', 'completed', 'stopped']);
    // A run that ends asks for no peers with `completed` (nor `stopped`); one that seeds next
    // does: leechers to dial.
    for (const tr of [t, u]) {
      expect(tr.announces.map((x) => x.numWant)).toEqual([50, 0, 0]);
    }
  });

  it('complete(seeding) asks for peers: a seed dials the leechers it is given', async () => {
    const t = await http_({ peers: [] });
    const u = await udp_({ peers: [] });
    const a = announcer({
      announceList: [[t.url], [u.url]],
      stats: () => ({ uploaded: 0, downloaded: 1000, left: 0 }),
    });
    const acked = new Set<string>();
    a.on('announce', (url) => acked.add(url));
    a.start();
    await until(() => acked.size === 2, 15_000, 'started acknowledged');
    await a.complete(true);
    await a.stop();
    for (const tr of [t, u]) {
      expect(tr.announces.map((x) => [x.event, x.numWant])).toEqual([
        ['started', 50],
        ['completed', 50],
        ['stopped', 0],
      ]);
    }
  });

  it('a hostile tracker (garbage, huge interval, slow) only produces warnings', async () => {
    const srv = http.createServer((_req, res) => res.end('this is not bencode'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          srv.close(() => r());
          srv.closeAllConnections();
        }),
    );
    const { port } = srv.address() as net.AddressInfo;
    const a = announcer({ announceList: [[`http://127.0.0.1:${port}/announce`]] });
    const warning = new Promise<string>((r) => a.once('warning', (m) => r(m)));
    a.start();
    expect(await warning).toMatch(/not valid bencode/);
  });
});
