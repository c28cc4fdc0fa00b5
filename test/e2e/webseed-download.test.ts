/**
 * WebSeeds with a tiny fake orchestrator (bitfield, SHA-1 check, in-memory store): downloads
 * from web seeds alone, with faulty seeds next to good ones, and stops cleanly.
 */
import { createHash } from 'node:crypto';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseTorrent, pieceHash, type Metainfo } from '../../src/metainfo/torrent.js';
import { Layout } from '../../src/storage/layout.js';
import { FRUITLESS_FAILURES, type WebSeedOptions } from '../../src/webseed/client.js';
import {
  MAX_WEB_SEEDS,
  TAKEOVER_REST_MS,
  WebSeeds,
  type WebSeedsOptions,
} from '../../src/webseed/scheduler.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { until } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';
import {
  startWebSeedServer,
  type ServerFault,
  type WebSeedServer,
} from '../helpers/web-seed-server.js';

const dispatcher = new Agent({ keepAliveTimeout: 1_000 });
afterAll(async () => {
  await dispatcher.destroy();
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((f) => f()));
});

async function server(
  files: Record<string, Buffer>,
  fault?: ServerFault,
  gate?: Promise<void>,
): Promise<WebSeedServer> {
  const s = await startWebSeedServer({ files, fault, gate });
  cleanups.push(() => s.close());
  return s;
}

/** Whether the fake orchestrator offers pickNext (runs of consecutive pieces). */
let useRuns = false;

/** The orchestrator's side, reduced to what web seeds need. */
class FakeSwarm {
  readonly have: Bitfield;
  readonly reserved = new Set<number>();
  readonly store: Buffer;
  readonly warnings: string[] = [];
  readonly from = new Map<string, number>();
  maxActive = 0;
  picks = 0;
  /** Like a careless orchestrator: hand out pieces whether the seed has them or not. */
  ignoreHas = false;
  seeds!: WebSeeds;
  private resolveDone!: () => void;
  readonly done = new Promise<void>((r) => (this.resolveDone = r));

  constructor(
    readonly meta: Metainfo,
    readonly layout: Layout,
  ) {
    this.have = new Bitfield(meta.pieceCount);
    this.store = Buffer.alloc(meta.length);
  }

  options(extra: Partial<WebSeedsOptions> = {}): WebSeedsOptions {
    return {
      pick: (has) => {
        this.picks++;
        this.maxActive = Math.max(this.maxActive, this.seeds.active + 1);
        for (let i = 0; i < this.meta.pieceCount; i++) {
          if (!this.have.has(i) && !this.reserved.has(i) && (this.ignoreHas || has(i))) {
            this.reserved.add(i);
            return i;
          }
        }
        return null;
      },
      onPiece: (index, data, url) => {
        expect(this.reserved.delete(index)).toBe(true);
        expect(data.length).toBe(this.layout.pieceSize(index));
        const ok = createHash('sha1').update(data).digest().equals(pieceHash(this.meta, index));
        if (ok) {
          data.copy(this.store, this.layout.pieceOffset(index));
          this.have.set(index);
          this.from.set(url, (this.from.get(url) ?? 0) + 1);
          if (this.have.isComplete()) this.resolveDone();
        }
        return ok;
      },
      onRelease: (index) => {
        expect(this.reserved.delete(index)).toBe(true);
      },
      onWarning: (msg) => this.warnings.push(msg),
      ...(useRuns
        ? {
            pickNext: (index: number) => {
              if (this.have.has(index) || this.reserved.has(index)) return false;
              this.reserved.add(index);
              return true;
            },
            maxRunBytes: 2 * this.meta.pieceLength,
          }
        : {}),
      ...extra,
    };
  }
}

function setup(
  t: MadeTorrent,
  urls: string[],
  seed: WebSeedOptions = {},
  extra: Partial<WebSeedsOptions> = {},
): FakeSwarm {
  const meta = parseTorrent(t.torrent);
  const layout = new Layout(meta.files, meta.pieceLength, meta.length);
  const swarm = new FakeSwarm(meta, layout);
  swarm.seeds = new WebSeeds(urls, meta, layout, {
    ...swarm.options(extra),
    seed: { dispatcher, ...seed },
  });
  cleanups.push(() => swarm.seeds.stop());
  return swarm;
}

const PL = 16 * 1024;
const single = makeTorrent({
  name: 'big file.bin',
  pieceLength: PL,
  files: { data: randomBytesSeeded(20 * PL + 123, 'dl-single') },
});
const singleFiles = { '/big%20file.bin': single.data };

const parts = [7000, 0, 40_000, 1, 33_333].map((n, i) => randomBytesSeeded(n, `dl-multi-${i}`));
const multi = makeTorrent({
  name: 'album',
  pieceLength: PL,
  files: parts.map((data, i) => ({ path: ['disc 1', `track ${i}.flac`], data })),
});
const multiFiles = Object.fromEntries(
  parts.map((d, i) => [`/ia/album/disc%201/track%20${i}.flac`, d]),
);

describe.each([false, true])('WebSeeds (runs of pieces: %s)', (runs) => {
  beforeEach(() => {
    useRuns = runs;
  });

  it('downloads a single-file torrent from one web seed alone, byte for byte', async () => {
    const s = await server(singleFiles);
    const swarm = setup(single, [`${s.origin}/`]);
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(single.data)).toBe(true);
    expect(swarm.maxActive).toBeLessThanOrEqual(2);
    expect(swarm.warnings).toEqual([]);
    expect(swarm.seeds.bytesFetched).toBe(single.data.length);
  });

  it('a server that ignores Range (200, the whole file) serves a single-file torrent', async () => {
    const s = await server(singleFiles, 'full-200');
    const swarm = setup(single, [`${s.origin}/`]);
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(single.data)).toBe(true);
    expect(swarm.warnings).toEqual([]);
    // With runs, a reply goes on while the following pieces are needed: the whole file in the
    // two requests sent before the server was known to ignore ranges. Piece by piece, each
    // reply is read from the start up to its piece.
    if (runs) expect(s.requests.length).toBeLessThanOrEqual(2);
    else expect(s.requests.length).toBe(single.pieces.length);
    // Bytes of a piece passed over count until it is dropped: a reply still running may hold one.
    expect(swarm.seeds.bytesFetched).toBeGreaterThanOrEqual(single.data.length);
    expect(swarm.seeds.bytesFetched).toBeLessThan(single.data.length + 2 * PL);
  });

  it('a server that ignores Range (200, the whole file) serves a multi-file torrent', async () => {
    // Pieces span files here: each file's reply is read from its start, and goes on with the
    // pieces wholly inside that file.
    const s = await server(multiFiles, 'full-200');
    const swarm = setup(multi, [`${s.origin}/ia`]);
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(multi.data)).toBe(true);
    expect(swarm.warnings).toEqual([]);
    // Never a request per piece of a file for a file read whole each time: at most one per
    // piece (the pieces that span files need one per file they touch).
    expect(s.requests.length).toBeLessThanOrEqual(multi.pieces.length + parts.length);
  });

  it('a server that ignores Range with a file of another length: the message says which', async () => {
    const short = single.data.subarray(0, single.data.length - 1000);
    const s = await server({ '/big%20file.bin': short }, 'full-200');
    const swarm = setup(single, [`${s.origin}/`]);
    swarm.seeds.start();
    for (let i = 0; i < 500 && swarm.warnings.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await swarm.seeds.stop();
    expect(swarm.warnings[0]).toContain(
      `is ${short.length} bytes there (Content-Length of a whole-file reply), ${single.data.length} in the torrent`,
    );
  });

  it('downloads a multi-file torrent (empty and one-byte files) from two seeds', async () => {
    const s1 = await server(multiFiles);
    const s2 = await server(multiFiles);
    const swarm = setup(multi, [`${s1.origin}/ia`, `${s2.origin}/ia/`], {}, { maxInFlight: 3 });
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(multi.data)).toBe(true);
    expect(swarm.maxActive).toBeLessThanOrEqual(3);
    expect(s1.requests.length).toBeGreaterThan(0);
    expect(s2.requests.length).toBeGreaterThan(0);
    await swarm.seeds.stop();
    expect(swarm.seeds.stats().every((st) => st.failures === 0 && st.inFlight === 0)).toBe(true);
  });

  it('the memory bound caps pieces in flight (never below one)', async () => {
    const s1 = await server(singleFiles);
    const s2 = await server(singleFiles);
    const swarm = setup(single, [`${s1.origin}/`, `${s2.origin}/`], {}, { maxInFlightBytes: 1 });
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(single.data)).toBe(true);
    expect(swarm.maxActive).toBe(1);
  });

  it('a bad-bytes seed is banned after 3 bad pieces while a good seed finishes', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const bad = await server(singleFiles, 'wrong-bytes');
    // The good seed answers nothing until the bad one is banned, so the ban is deterministic.
    const good = await server(singleFiles, undefined, gate);
    const swarm = setup(single, [`${bad.origin}/`, `${good.origin}/`], { backoffBaseMs: 1 });
    const onWarning = swarm.options().onWarning;
    swarm.seeds = new WebSeeds([`${bad.origin}/`, `${good.origin}/`], swarm.meta, swarm.layout, {
      ...swarm.options(),
      onWarning: (msg) => {
        onWarning(msg);
        if (msg.includes('banned')) open();
      },
      seed: { dispatcher, backoffBaseMs: 1 },
    });
    cleanups.push(() => swarm.seeds.stop());
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(single.data)).toBe(true);
    const [b, g] = swarm.seeds.stats();
    expect(b!.banned).toBe(true);
    expect(b!.badPieces).toBe(3);
    expect(g!.banned).toBe(false);
    expect(swarm.from.get(`${good.origin}/`)).toBe(single.pieces.length);
    expect(swarm.warnings.filter((w) => w.includes('failed verification'))).toHaveLength(3);
    expect(swarm.warnings.at(-1)).toMatch(/banned after 3 bad pieces/);
    // Banned means never asked again.
    const asked = bad.requests.length;
    swarm.seeds.wake();
    await new Promise((r) => setTimeout(r, 20));
    expect(bad.requests.length).toBe(asked);
    expect(swarm.seeds.usable()).toBe(true);
  });

  const faults: ServerFault[] = [
    'not-found',
    'server-error',
    'stall-headers',
    'stall-body',
    'redirect-file',
    'redirect-ftp',
    'redirect-loop',
    'short-body',
    'cut-body',
    'wrong-content-length',
    'wrong-range',
  ];
  for (const fault of faults) {
    it(`a seed with '${fault}' is backed off and the good seed finishes`, async () => {
      const bad = await server(multiFiles, fault);
      const good = await server(multiFiles);
      const swarm = setup(multi, [`${bad.origin}/ia`, `${good.origin}/ia`], { timeoutMs: 300 });
      swarm.seeds.start();
      await swarm.done;
      expect(swarm.store.equals(multi.data)).toBe(true);
      const [b, g] = swarm.seeds.stats();
      // It was tried (both seeds get work at the start), failed, and was not asked again
      // during its 5 s back-off: no more failures than requests it had in flight.
      expect(b!.failures).toBeGreaterThanOrEqual(1);
      expect(b!.failures).toBeLessThanOrEqual(2);
      expect(b!.backoffUntil).toBeGreaterThan(Date.now());
      expect(b!.banned).toBe(false);
      expect(g!.failures).toBe(0);
      expect(
        swarm.warnings.some((w) => w.includes(bad.origin) && /next try in \d+ s/.test(w)),
      ).toBe(true);
      // Said once for the requests that failed together, not once each.
      const said = swarm.warnings.filter((w) => w.includes(bad.origin));
      expect(new Set(said).size).toBe(said.length);
      if (fault === 'not-found') {
        expect(said.some((w) => w.includes('that file is not asked for again'))).toBe(true);
      }
      // A server that is down answers 503 for each file's URL: one warning, not one per file;
      // a fault that names each request's range (wrong-range, a length) is said once too, and
      // so is a 404 for every file (a wrong base URL).
      expect(said).toHaveLength(1);
    });
  }

  it('the same failure between pieces delivered is said again at most once a minute', async () => {
    // A server that cuts a reply now and then, serving the others right: said once, not at every
    // cut (348 times in 14 minutes before), and again once a minute of the clock has passed.
    const c = { t: 1_000_000 };
    const s = await startWebSeedServer({
      files: singleFiles,
      fault: 'cut-body',
      bytesPerSecond: 100_000,
    });
    cleanups.push(() => s.close());
    const swarm = setup(single, [`${s.origin}/`], { timeoutMs: 5_000, now: () => c.t });
    const url = `${s.origin}/`;
    const said = () => swarm.warnings.filter((w) => w.includes('closed the connection'));
    const failures = () => swarm.seeds.stats()[0]!.failures;
    swarm.seeds.start();
    // Its requests in flight fail together (one warning for them).
    await until(() => failures() >= 1, 20_000, 'the first cut');
    expect(said()).toHaveLength(1);
    expect(said()[0]).toMatch(/before its reply was complete; next try in \d+ s$/);
    for (const [advance, expected] of [
      [30_000, 1],
      [61_000, 2],
    ] as const) {
      // Past the back-off: a piece comes whole, then the next reply is cut again.
      const before = swarm.from.get(url) ?? 0;
      s.setFault('none');
      c.t += advance;
      swarm.seeds.wake();
      await until(() => (swarm.from.get(url) ?? 0) > before, 20_000, 'a piece');
      const n = failures();
      s.setFault('cut-body');
      await until(() => failures() > n, 20_000, 'a cut');
      expect(said()).toHaveLength(expected);
    }
    expect(swarm.warnings.some((w) => /UND_ERR/.test(w))).toBe(false);
  });

  it('a slow seed gives its pieces up to one that sits idle, and rests', async () => {
    // 2 KB/s: a piece of 16 KiB in 8 s, its first requests 16-32 s. The fast seed has
    // everything else in well under a second and then nothing to do.
    const slow = await startWebSeedServer({ files: singleFiles, bytesPerSecond: 2_000 });
    cleanups.push(() => slow.close());
    const fast = await server(singleFiles);
    const swarm = setup(single, [`${slow.origin}/`, `${fast.origin}/`]);
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(single.data)).toBe(true);
    // Taken over after TAKEOVER_PROBE_MS (3 s), before its first piece was whole.
    expect(swarm.from.get(`${slow.origin}/`)).toBeUndefined();
    expect(swarm.from.get(`${fast.origin}/`)).toBe(single.pieces.length);
    const asked = slow.requests.length;
    swarm.seeds.wake();
    await new Promise((r) => setTimeout(r, 20));
    expect(slow.requests.length).toBe(asked);
    expect(swarm.warnings).toEqual([]);
  });

  it('a seed that slows down after a fast start gives its pieces up too', async () => {
    // Its first 16 replies at once, then 1 KB/s: its average since its first request stays high
    // long after; its last seconds' rate is what tells.
    const PLB = 16 * 1024;
    const data = randomBytesSeeded(64 * PLB, 'flip');
    const t = makeTorrent({ name: 'flip.bin', pieceLength: PLB, files: { data } });
    const files = { '/flip.bin': data };
    const flip = await startWebSeedServer({ files, bytesPerSecond: 1_000, fastReplies: 16 });
    cleanups.push(() => flip.close());
    const steady = await server(files);
    const swarm = setup(t, [`${flip.origin}/`, `${steady.origin}/`]);
    const t0 = Date.now();
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(data)).toBe(true);
    // Its last requests, 16 KiB each at 1 KB/s, would have taken 16 s.
    expect(Date.now() - t0).toBeLessThan(14_000);
  }, 60_000);

  it('a slow seed keeps the pieces of a file the idle one lacks, and fetches them while it rests', async () => {
    // The fast seed lacks b.bin: the slow one is the only source of its pieces. Taking them
    // over for the idle fast seed left them to no one for the 30 s rest.
    const a = randomBytesSeeded(64 * 1024, 'lack-a');
    const b = randomBytesSeeded(64 * 1024, 'lack-b');
    const t = makeTorrent({
      name: 'pair',
      pieceLength: PL,
      files: [
        { path: ['a.bin'], data: a },
        { path: ['b.bin'], data: b },
      ],
    });
    const slow = await startWebSeedServer({
      files: { '/ws/pair/a.bin': a, '/ws/pair/b.bin': b },
      bytesPerSecond: 4_000,
    });
    cleanups.push(() => slow.close());
    const fast = await server({ '/ws/pair/a.bin': a });
    const swarm = setup(t, [`${slow.origin}/ws`, `${fast.origin}/ws`]);
    const t0 = Date.now();
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(t.data)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(TAKEOVER_REST_MS);
    // Every piece of b.bin came from the slow seed.
    expect(swarm.from.get(`${slow.origin}/ws`)).toBeGreaterThanOrEqual(4);
  }, 60_000);

  it('a seed that answers 503 with Retry-After is not asked again before that', async () => {
    const s = await server(singleFiles, 'retry-after');
    const good = await server(singleFiles);
    const swarm = setup(single, [`${s.origin}/`, `${good.origin}/`], { backoffBaseMs: 20 });
    const t0 = Date.now();
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(single.data)).toBe(true);
    const [b] = swarm.seeds.stats();
    expect(b!.backoffUntil).toBeGreaterThanOrEqual(t0 + 30_000);
    expect(s.requests.length).toBeLessThanOrEqual(2);
    expect(
      swarm.warnings.some((w) => /HTTP status 503 .*\(Retry-After 30s\); next try in 30 s/.test(w)),
    ).toBe(true);
  });

  it('a seed that failed is used again once its back-off is over', async () => {
    const s = await server(singleFiles);
    s.setFault('not-found', 2);
    const swarm = setup(single, [`${s.origin}/`], { backoffBaseMs: 20 });
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(single.data)).toBe(true);
    expect(swarm.seeds.stats()[0]!.failures).toBe(2);
  });

  // A stale first file (pieces 0 and 1 inside it, piece 2 across it and the next file).
  const stale = [randomBytesSeeded(40_000, 'stale-0'), randomBytesSeeded(33_333, 'stale-1')];
  const staleTorrent = makeTorrent({
    name: 'item',
    pieceLength: PL,
    files: stale.map((data, i) => ({ path: [`f${i}`], data })),
  });
  const staleFiles = { '/item/f0': stale[0]!, '/item/f1': stale[1]! };

  it('a seed with one changed file is not asked for that file again, and not banned', async () => {
    const changed = Buffer.from(stale[0]!);
    changed[100] = changed[100]! ^ 1;
    const a = await server({ ...staleFiles, '/item/f0': changed });
    const b = await server(staleFiles);
    const swarm = setup(staleTorrent, [`${a.origin}/`, `${b.origin}/`], { backoffBaseMs: 1 });
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(staleTorrent.data)).toBe(true);
    const seedA = swarm.seeds.seeds[0]!;
    expect(seedA.banned).toBe(false);
    expect([...seedA.lackingFiles]).toEqual([0]);
    expect(seedA.badPieces).toBeLessThanOrEqual(2);
    // After the bad piece, A only served pieces wholly in f1.
    expect(swarm.from.get(`${a.origin}/`) ?? 0).toBeGreaterThan(0);
  });

  it('a seed without one file serves the others', async () => {
    const a = await server({ '/item/f1': stale[1]! });
    const b = await server(staleFiles, undefined);
    const swarm = setup(staleTorrent, [`${a.origin}/`, `${b.origin}/`], { backoffBaseMs: 1 });
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(staleTorrent.data)).toBe(true);
    const seedA = swarm.seeds.seeds[0]!;
    expect([...seedA.lackingFiles]).toEqual([0]);
    expect(seedA.failures).toBeLessThanOrEqual(2);
    expect(a.requests.filter((r) => r.path === '/item/f0').length).toBe(seedA.failures);
  });

  it('a reply longer than its range is cut off: its range is kept, and no failure', async () => {
    // The extra bytes come in the same chunk as the range's last ones: dropping the chunk
    // whole (a failure), no range ever completed its last piece, and the seed never served.
    const s = await server(singleFiles, 'long-body');
    const swarm = setup(single, [`${s.origin}/`]);
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(single.data)).toBe(true);
    expect(swarm.seeds.seeds[0]!.failures).toBe(0);
    expect(swarm.warnings).toEqual([]);
  });

  it('a seed whose replies always break before the piece is whole: its bytes stop being data', async () => {
    // One piece: every request is for it, and every reply ends 10 bytes short.
    const one = makeTorrent({
      name: 'one.bin',
      pieceLength: PL,
      files: { data: randomBytesSeeded(PL, 'fruitless') },
    });
    const s = await server({ '/one.bin': one.data }, 'short-body');
    const swarm = setup(one, [`${s.origin}/`], { backoffBaseMs: 1 });
    swarm.seeds.start();
    const seed = swarm.seeds.seeds[0]!;
    const failures = async (n: number) => {
      while (seed.failures < n) await new Promise((r) => setTimeout(r, 5));
    };
    await failures(FRUITLESS_FAILURES);
    const counted = seed.progressBytes;
    const fetched = seed.bytesFetched;
    expect(counted).toBe(FRUITLESS_FAILURES * (PL - 10));
    await failures(FRUITLESS_FAILURES + 3);
    expect(seed.bytesFetched).toBeGreaterThanOrEqual(fetched + 3 * (PL - 10));
    expect(seed.progressBytes).toBe(counted);
    expect(swarm.seeds.progressBytes).toBe(counted);
  });

  it("failures that brought no bytes (a 503 spell) leave the seed's bytes counted as data", async () => {
    const s = await startWebSeedServer({
      files: singleFiles,
      fault: 'server-error',
      faultCount: FRUITLESS_FAILURES + 2,
    });
    cleanups.push(() => s.close());
    const swarm = setup(single, [`${s.origin}/`], { backoffBaseMs: 1 });
    swarm.seeds.start();
    await swarm.done;
    const seed = swarm.seeds.seeds[0]!;
    expect(seed.failures).toBeGreaterThanOrEqual(FRUITLESS_FAILURES);
    expect(seed.progressBytes).toBe(seed.bytesFetched);
  });

  it('a seed that lacks a file in the middle goes on with the next ones at once', async () => {
    // f1 (pieces 2..4) is missing on A; B holds everything but sends 20 KB/s. Once A has sent
    // pieces, its 404 is about that file: A is not paused for the 5 s of a failing server.
    const three = [40_000, 33_333, 50_000].map((n, i) => randomBytesSeeded(n, `mid-${i}`));
    const t = makeTorrent({
      name: 'item',
      pieceLength: PL,
      files: three.map((data, i) => ({ path: [`f${i}`], data })),
    });
    const files = { '/item/f0': three[0]!, '/item/f1': three[1]!, '/item/f2': three[2]! };
    const a = await server({ '/item/f0': three[0]!, '/item/f2': three[2]! });
    const b = await startWebSeedServer({ files, bytesPerSecond: 20_000 });
    cleanups.push(() => b.close());
    const swarm = setup(t, [`${a.origin}/`, `${b.origin}/`]);
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(t.data)).toBe(true);
    const seedA = swarm.seeds.seeds[0]!;
    expect([...seedA.lackingFiles]).toEqual([1]);
    const said = swarm.warnings.filter((w) => w.includes(a.origin));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('that file is not asked for again; the others: next try now');
    // Never paused: asked for f2 as soon as it answered for f1.
    expect(seedA.backoffUntil).toBe(0);
    expect(a.requests.filter((r) => r.path === '/item/f1').length).toBe(seedA.failures);
  });

  it('a seed with a shorter copy of one file serves the others', async () => {
    const a = await server({ '/item/f0': stale[0]!.subarray(0, 5000), '/item/f1': stale[1]! });
    const b = await server(staleFiles);
    const swarm = setup(staleTorrent, [`${a.origin}/`, `${b.origin}/`], { backoffBaseMs: 1 });
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(staleTorrent.data)).toBe(true);
    const seedA = swarm.seeds.seeds[0]!;
    expect([...seedA.lackingFiles]).toEqual([0]);
    // Said as what it is: that file is left, not the seed backed off.
    const said = swarm.warnings.filter((w) => w.includes(a.origin));
    expect(said.length).toBeGreaterThan(0);
    for (const w of said) expect(w).toContain('that file is not asked for again');
    expect(seedA.failures).toBeLessThanOrEqual(2);
    expect(a.requests.filter((r) => r.path === '/item/f0').length).toBe(seedA.failures);
  });

  it('a picker that ignores has() gets the piece back, without looping', async () => {
    const a = await server({ '/item/f1': stale[1]! });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const b = await server(staleFiles, undefined, gate);
    const swarm = setup(staleTorrent, [`${a.origin}/`, `${b.origin}/`], { backoffBaseMs: 1 });
    swarm.ignoreHas = true;
    swarm.seeds.start();
    // A learns it lacks f0; then pieces 0..2 keep coming back to it and are released at once.
    while (!swarm.seeds.seeds[0]!.lackingFiles.has(0)) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 100));
    open();
    await swarm.done;
    expect(swarm.store.equals(staleTorrent.data)).toBe(true);
    expect(a.requests.filter((r) => r.path === '/item/f0').length).toBeLessThanOrEqual(2);
    // Each pick is answered by a fetch, a release or the end: a few per piece, not a spin.
    expect(swarm.picks).toBeLessThan(20 * staleTorrent.pieces.length);
  });

  it('stop() aborts requests in flight and releases their pieces', async () => {
    const s = await server(singleFiles, 'stall-headers');
    const swarm = setup(single, [`${s.origin}/`]);
    swarm.seeds.start();
    while (s.requests.length < 2) await new Promise((r) => setTimeout(r, 5));
    expect(swarm.reserved.size).toBe(runs ? 4 : 2);
    await swarm.seeds.stop();
    expect(swarm.reserved.size).toBe(0);
    expect(swarm.seeds.active).toBe(0);
    expect(swarm.warnings).toEqual([]);
    expect(swarm.seeds.stats()[0]!.failures).toBe(0);
  });

  it('when every seed is banned, usable() says so and nothing is requested', async () => {
    const bad = await server(singleFiles, 'wrong-bytes');
    const swarm = setup(single, [`${bad.origin}/`], { backoffBaseMs: 1 });
    swarm.seeds.start();
    while (swarm.seeds.usable()) await new Promise((r) => setTimeout(r, 5));
    await swarm.seeds.stop();
    expect(swarm.reserved.size).toBe(0);
    expect(swarm.have.count).toBe(0);
    expect(swarm.seeds.stats()[0]!.badPieces).toBe(3);
  });

  it('skips bad and duplicate url-list entries and keeps at most MAX_WEB_SEEDS', () => {
    const urls = [
      'ftp://example.org/x',
      'not a url',
      'http://127.0.0.1:1/a',
      'http://127.0.0.1:1/a',
      ...Array.from({ length: MAX_WEB_SEEDS + 2 }, (_, i) => `http://127.0.0.1:1/m${i}`),
    ];
    const swarm = setup(single, urls);
    expect(swarm.seeds.seeds.map((s) => s.url)).toEqual([
      'http://127.0.0.1:1/a',
      ...Array.from({ length: MAX_WEB_SEEDS - 1 }, (_, i) => `http://127.0.0.1:1/m${i}`),
    ]);
    expect(swarm.warnings.slice(2)).toEqual([
      `${MAX_WEB_SEEDS + 3} web seeds: using the first ${MAX_WEB_SEEDS}, 3 more were left out`,
    ]);
    expect(swarm.warnings).toHaveLength(2 + 1);
  });

  it('says once how many were left out or skipped, however many the torrent lists', () => {
    const urls = [
      ...Array.from({ length: 5 }, (_, i) => `ftp://example.org/${i}`),
      ...Array.from({ length: 100_000 }, (_, i) => `http://127.0.0.1:1/m${i}`),
    ];
    const swarm = setup(single, urls);
    expect(swarm.seeds.seeds).toHaveLength(MAX_WEB_SEEDS);
    expect(swarm.warnings).toHaveLength(3 + 2);
    expect(swarm.warnings.slice(3)).toEqual([
      '2 more web seeds skipped likewise',
      `100000 web seeds: using the first ${MAX_WEB_SEEDS}, ${100_000 - MAX_WEB_SEEDS} more were left out`,
    ]);
  });
});

describe('WebSeeds runs', () => {
  beforeEach(() => {
    useRuns = true;
  });

  it('onPiece throwing (a disk error) goes to onError and the rest of the run is released', async () => {
    const s = await server(singleFiles);
    const errors: unknown[] = [];
    let calls = 0;
    const swarm = setup(
      single,
      [`${s.origin}/`],
      {},
      {
        maxRunBytes: 4 * PL,
        maxConcurrentPerSeed: 1,
        onPiece: () => {
          calls++;
          throw new Error('disk full');
        },
        onError: (err) => {
          errors.push(err);
          void swarm.seeds.stop();
        },
      },
    );
    swarm.seeds.start();
    while (errors.length === 0) await new Promise((r) => setTimeout(r, 5));
    await swarm.seeds.stop();
    expect(calls).toBe(1);
    expect((errors[0] as Error).message).toBe('disk full');
    // Piece 0 went to onPiece (which owns it now); pieces 1..3 of the run were released.
    expect([...swarm.reserved]).toEqual([0]);
  });

  it('with pickNext, a whole single file comes in one request', async () => {
    const s = await server(singleFiles);
    const swarm = setup(single, [`${s.origin}/`], {}, { maxRunBytes: 64 * PL });
    swarm.seeds.start();
    await swarm.done;
    expect(swarm.store.equals(single.data)).toBe(true);
    expect(s.requests.map((r) => r.range)).toEqual([`bytes=0-${single.data.length - 1}`]);
  });

  it('a run stops at a piece the seed lacks, and a bad piece ends its run', async () => {
    const changed = Buffer.from(parts[2]!);
    changed[20_000] = changed[20_000]! ^ 1; // inside piece 1, which lies wholly in track 2
    const a = await server({ ...multiFiles, '/ia/album/disc%201/track%202.flac': changed });
    const swarm = setup(multi, [`${a.origin}/ia`], { backoffBaseMs: 1 }, { maxRunBytes: 64 * PL });
    swarm.seeds.start();
    while (swarm.warnings.length === 0) await new Promise((r) => setTimeout(r, 5));
    await swarm.seeds.stop();
    const seed = swarm.seeds.seeds[0]!;
    expect(seed.badPieces).toBe(1);
    expect([...seed.lackingFiles]).toEqual([2]);
    expect(swarm.have.has(0)).toBe(true);
    expect(swarm.have.has(1)).toBe(false);
    expect(swarm.reserved.size).toBe(0);
  });
});
