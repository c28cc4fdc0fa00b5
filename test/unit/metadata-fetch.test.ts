import { describe, expect, it } from 'vitest';
import { decodeStrict } from '../../src/metainfo/bencode.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import {
  FRUITLESS_ATTEMPTS,
  MAX_TIMEOUTS,
  METADATA_HEDGE_MS,
  METADATA_REQUEST_TIMEOUT_MS,
  MetadataFetch,
  REJECT_BACKOFF_MS,
  torrentFromInfo,
  type FetchResult,
} from '../../src/swarm/metadata-fetch.js';
import {
  MAX_METADATA_SIZE,
  METADATA_PIECE_SIZE,
  type UtMetadataMessage,
  answerMetadataRequest,
  decodeUtMetadata,
  encodeUtMetadata,
} from '../../src/wire/ut-metadata.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

// 2500 pieces of 16 bytes: the info dictionary is about 50 KB, 4 metadata pieces.
const made = makeTorrent({
  name: 'meta.bin',
  pieceLength: 16,
  files: { data: randomBytesSeeded(2500 * 16, 'metadata-fetch') },
});
const { span } = decodeStrict(made.torrent, { spanOf: 'info' });
const INFO = made.torrent.subarray(span![0], span![1]);
const HASH = made.infoHash;
const SIZE = INFO.length;
const PIECES = Math.ceil(SIZE / METADATA_PIECE_SIZE);

/** A peer's answer to a request, through the real codec. */
type Responder = (piece: number) => UtMetadataMessage | null;

const honest: Responder = (piece) =>
  decodeUtMetadata(encodeUtMetadata(answerMetadataRequest(INFO, piece)));

/** Answers with piece `bad` corrupted (one byte flipped). */
function liar(bad: number): Responder {
  return (piece) => {
    const m = honest(piece)!;
    if (m.type === 'data' && piece === bad) {
      const data = Buffer.from(m.data);
      data[0] = data[0]! ^ 0xff;
      return { ...m, data };
    }
    return m;
  };
}

/**
 * Runs a fetch over fake peers until it is done or nothing moves: each round asks each peer
 * for its requests and feeds back its answers. Returns the results per peer.
 */
function drive(
  fetch: MetadataFetch,
  peers: Record<string, Responder>,
  log: { id: string; piece: number; result: FetchResult }[] = [],
): typeof log {
  for (let round = 0; round < 500 && fetch.info === null; round++) {
    let moved = false;
    for (const [id, respond] of Object.entries(peers)) {
      for (const piece of fetch.requestsFor(id)) {
        moved = true;
        const answer = respond(piece);
        if (answer === null) continue;
        const result = fetch.onMessage(id, answer);
        log.push({ id, piece, result });
        if (result === 'done') return log;
      }
    }
    if (!moved) break;
  }
  return log;
}

/**
 * Peers `a` and `b` (and `more`) on a fetch whose first attempt mixed a's bad pieces 0-1 with
 * b's good 2-3: it failed with no one to blame, and the fetch is in exclusive mode. The clock is
 * `clock.now`.
 */
function exclusiveFetch(more: string[] = []) {
  const clock = { now: 0 };
  const f = new MetadataFetch(HASH, { now: () => clock.now });
  for (const id of ['a', 'b', ...more]) f.addPeer(id, SIZE);
  expect(f.requestsFor('a')).toEqual([0, 1]);
  expect(f.requestsFor('b')).toEqual([2, 3]);
  const bad = liar(0);
  f.onMessage('a', bad(0)!);
  f.onMessage('a', bad(1)!);
  f.onMessage('b', dataMsg(2));
  expect(f.onMessage('b', dataMsg(3))).toBe('ok');
  expect(f.exclusiveMode).toBe(true);
  return { f, clock, bad };
}

function dataMsg(piece: number, totalSize = SIZE, data?: Buffer): UtMetadataMessage {
  const m = answerMetadataRequest(INFO, piece);
  if (m.type !== 'data') throw new Error('no such piece');
  return { type: 'data', piece, totalSize, data: data ?? m.data };
}

describe('MetadataFetch', () => {
  it('fetches from several peers, at most 2 requests each, and checks the hash', () => {
    expect(PIECES).toBe(4);
    const f = new MetadataFetch(HASH);
    expect(f.addPeer('a', SIZE)).toBe(true);
    expect(f.addPeer('b', SIZE)).toBe(true);
    expect(f.peersWithMetadata()).toBe(2);
    const a = f.requestsFor('a');
    const b = f.requestsFor('b');
    expect(a).toEqual([0, 1]);
    expect(b).toEqual([2, 3]);
    expect(f.requestsFor('a')).toEqual([]);
    expect(f.onMessage('a', dataMsg(0))).toBe('ok');
    expect(f.onMessage('b', dataMsg(3))).toBe('ok');
    expect(f.onMessage('b', dataMsg(2))).toBe('ok');
    expect(f.onMessage('a', dataMsg(1))).toBe('done');
    expect(f.info!.equals(INFO)).toBe(true);
    expect(f.requestsFor('a')).toEqual([]);
    // late or repeated data after the end is harmless
    expect(f.onMessage('b', dataMsg(1))).toBe('ok');
  });

  it('keeps a copy of each piece (messages are views of the framer buffer)', () => {
    const f = new MetadataFetch(HASH, { maxPerPeer: 4 });
    f.addPeer('a', SIZE);
    for (const piece of f.requestsFor('a')) {
      const m = dataMsg(piece);
      const view = Buffer.from(m.type === 'data' ? m.data : Buffer.alloc(0));
      f.onMessage('a', { ...(m as Extract<UtMetadataMessage, { type: 'data' }>), data: view });
      view.fill(0);
    }
    expect(f.info!.equals(INFO)).toBe(true);
  });

  it('the .torrent built around the info bytes parses with the same info hash', () => {
    const f = new MetadataFetch(HASH);
    f.addPeer('a', SIZE);
    drive(f, { a: honest });
    const trackers = [['http://t1/announce', 'http://t1b/announce'], ['udp://t2:80']];
    const meta = parseTorrent(torrentFromInfo(f.info!, trackers));
    expect(meta.infoHash.equals(HASH)).toBe(true);
    expect(meta.announce).toBe('http://t1/announce');
    expect(meta.announceList).toEqual(trackers);
    expect(meta.name).toBe('meta.bin');
    const bare = parseTorrent(torrentFromInfo(f.info!, []));
    expect(bare.infoHash.equals(HASH)).toBe(true);
    expect(bare.announceList).toEqual([]);
    // A magnet's ws: the web seeds, after the info (keys in order); a bad one is a warning.
    const seeded = parseTorrent(
      torrentFromInfo(f.info!, trackers, ['http://w.example/a/', 'ftp://w.example/b', '']),
    );
    expect(seeded.infoHash.equals(HASH)).toBe(true);
    expect(seeded.urlList).toEqual(['http://w.example/a/']);
    expect(seeded.warnings.join('\n')).toMatch(/url-list\[1\]: "ftp:\/\/w\.example\/b" ignored/);
  });

  it.each([
    ['0', 0],
    ['over the cap', MAX_METADATA_SIZE + 1],
    ['negative', -1],
    ['fractional', 1.5],
  ])('ignores a peer announcing a size %s', (_name, size) => {
    const f = new MetadataFetch(HASH);
    expect(f.addPeer('a', size)).toBe(false);
    expect(f.peersWithMetadata()).toBe(0);
    expect(f.requestsFor('a')).toEqual([]);
    // and data from it is unsolicited
    expect(f.onMessage('a', dataMsg(0))).toEqual({ drop: expect.any(String) });
  });

  it('accepts a size at the cap', () => {
    const f = new MetadataFetch(HASH);
    expect(f.addPeer('a', MAX_METADATA_SIZE)).toBe(true);
    expect(f.requestsFor('a')).toEqual([0, 1]);
  });

  it('drops a peer whose total_size differs from its metadata_size; others take its pieces', () => {
    const f = new MetadataFetch(HASH);
    f.addPeer('a', SIZE);
    f.addPeer('b', SIZE);
    expect(f.requestsFor('a')).toEqual([0, 1]);
    const r = f.onMessage('a', dataMsg(0, SIZE + 1));
    expect(r).toEqual({ drop: expect.stringMatching(/total_size/) });
    expect(f.addPeer('a', SIZE)).toBe(false); // not taken back
    expect(f.requestsFor('b')).toEqual([0, 1]);
    f.onMessage('b', dataMsg(0));
    f.onMessage('b', dataMsg(1));
    drive(f, { b: honest });
    expect(f.info!.equals(INFO)).toBe(true);
  });

  it('drops a peer for a piece index out of range', () => {
    const f = new MetadataFetch(HASH);
    f.addPeer('a', SIZE);
    f.requestsFor('a');
    const r = f.onMessage('a', {
      type: 'data',
      piece: PIECES,
      totalSize: SIZE,
      data: Buffer.alloc(1),
    });
    expect(r).toEqual({ drop: expect.stringMatching(/out of range/) });
  });

  it('drops a peer for a piece of the wrong length', () => {
    for (const len of [0, 100, METADATA_PIECE_SIZE - 1]) {
      const f = new MetadataFetch(HASH);
      f.addPeer('a', SIZE);
      f.requestsFor('a');
      const r = f.onMessage('a', dataMsg(0, SIZE, Buffer.alloc(len)));
      expect(r).toEqual({ drop: expect.stringMatching(/bytes, expected 16384/) });
    }
    // the last piece is shorter, and must be exactly that long
    const f = new MetadataFetch(HASH, { maxPerPeer: 8 });
    f.addPeer('a', SIZE);
    f.requestsFor('a');
    const last = SIZE - (PIECES - 1) * METADATA_PIECE_SIZE;
    const r = f.onMessage('a', dataMsg(PIECES - 1, SIZE, Buffer.alloc(last + 1)));
    expect(r).toEqual({ drop: expect.stringMatching(`expected ${last}`) });
  });

  it('drops a peer that sends a piece it was not asked for', () => {
    const f = new MetadataFetch(HASH);
    f.addPeer('a', SIZE);
    expect(f.onMessage('a', dataMsg(0))).toEqual({ drop: expect.stringMatching(/not requested/) });
  });

  it('a reject frees the piece for others and rests the peer, longer each time', () => {
    let now = 0;
    const f = new MetadataFetch(HASH, { now: () => now, requestTimeoutMs: 1e9 });
    f.addPeer('a', SIZE);
    f.addPeer('b', SIZE);
    expect(f.requestsFor('a')).toEqual([0, 1]);
    expect(f.onMessage('a', { type: 'reject', piece: 0 })).toBe('ok');
    // a reject of something never asked is ignored
    expect(f.onMessage('a', { type: 'reject', piece: 3 })).toBe('ok');
    expect(f.requestsFor('a')).toEqual([]);
    expect(f.requestsFor('b')).toEqual([0, 2]);
    now += REJECT_BACKOFF_MS;
    expect(f.requestsFor('a')).toEqual([3]);
    expect(f.onMessage('a', { type: 'reject', piece: 3 })).toBe('ok');
    now += REJECT_BACKOFF_MS;
    expect(f.requestsFor('a')).toEqual([]);
    now += REJECT_BACKOFF_MS;
    expect(f.requestsFor('a')).toEqual([3]);
    expect(f.peersWithMetadata()).toBe(2);
  });

  it('a peer that sent every piece of a bad copy is dropped; the fetch goes on from another', () => {
    const f = new MetadataFetch(HASH, { maxPerPeer: 8 });
    f.addPeer('liar', SIZE);
    const log = drive(f, { liar: liar(2) });
    expect(log.at(-1)!.result).toEqual({ drop: expect.stringMatching(/info hash/) });
    expect(f.info).toBeNull();
    expect(f.exclusiveMode).toBe(false);
    expect(f.addPeer('liar', SIZE)).toBe(false);
    f.addPeer('good', SIZE);
    drive(f, { good: honest });
    expect(f.info!.equals(INFO)).toBe(true);
  });

  it('a bad copy from several peers blames no one, then each attempt uses one peer', () => {
    const f = new MetadataFetch(HASH);
    f.addPeer('liar', SIZE);
    f.addPeer('good', SIZE);
    const log = drive(f, { liar: liar(0), good: honest });
    // Round 1 mixes both peers and fails without blame; the liar then gets an attempt of its
    // own, fails alone and is dropped; the honest peer's own attempt succeeds.
    const firstFailure = log.findIndex((e) => e.id === 'good' && e.piece === 3);
    expect(log[firstFailure]!.result).toBe('ok');
    expect(new Set(log.slice(0, firstFailure + 1).map((e) => e.id))).toEqual(
      new Set(['liar', 'good']),
    );
    const drops = log.filter((e) => typeof e.result === 'object');
    expect(drops.map((e) => e.id)).toEqual(['liar']);
    const after = log.slice(log.indexOf(drops[0]!) + 1);
    expect(after.every((e) => e.id === 'good')).toBe(true);
    expect(after.length).toBe(PIECES);
    expect(f.exclusiveMode).toBe(true);
    expect(f.info!.equals(INFO)).toBe(true);
  });

  it('in exclusive mode, a peer that rejects hands the attempt to another', () => {
    const f = new MetadataFetch(HASH);
    f.addPeer('liar', SIZE);
    f.addPeer('good', SIZE);
    // one mixed failure to enter exclusive mode
    expect(f.requestsFor('liar')).toEqual([0, 1]);
    expect(f.requestsFor('good')).toEqual([2, 3]);
    for (const piece of [0, 1]) f.onMessage('liar', liar(0)(piece)!);
    for (const piece of [2, 3]) expect(f.onMessage('good', dataMsg(piece))).toBe('ok');
    expect(f.exclusiveMode).toBe(true);
    expect(f.requestsFor('liar')).toEqual([0, 1]);
    expect(f.requestsFor('good')).toEqual([]);
    expect(f.onMessage('liar', { type: 'reject', piece: 0 })).toBe('ok');
    expect(f.requestsFor('good')).toEqual([0, 1]);
    // a late answer from the former exclusive peer is not mixed into this attempt
    expect(f.onMessage('liar', dataMsg(1))).toBe('ok');
    for (const piece of [0, 1]) expect(f.onMessage('good', dataMsg(piece))).toBe('ok');
    drive(f, { good: honest });
    expect(f.info!.equals(INFO)).toBe(true);
  });

  it('with honest peers to spare, a liar costs one retry and no honest peer', () => {
    const f = new MetadataFetch(HASH);
    for (const id of ['liar', 'good1', 'good2']) f.addPeer(id, SIZE);
    const log = drive(f, { liar: liar(0), good1: honest, good2: honest });
    expect(f.info!.equals(INFO)).toBe(true);
    const drops = log.filter((e) => typeof e.result === 'object').map((e) => e.id);
    expect(drops.every((id) => id === 'liar')).toBe(true);
    expect(f.addPeer('good1', SIZE)).toBe(true);
    expect(f.addPeer('good2', SIZE)).toBe(true);
  });

  it('picks the size most peers announce, and finds the true one when liars outnumber', () => {
    const f = new MetadataFetch(HASH);
    const fakeSize = SIZE + 5000;
    const fake = (piece: number): UtMetadataMessage => {
      const len = Math.min(METADATA_PIECE_SIZE, fakeSize - piece * METADATA_PIECE_SIZE);
      return { type: 'data', piece, totalSize: fakeSize, data: Buffer.alloc(len, 1) };
    };
    f.addPeer('l1', fakeSize);
    f.addPeer('l2', fakeSize);
    f.addPeer('good', SIZE);
    expect(f.requestsFor('good')).toEqual([]); // the attempt is for the majority's size
    const log = drive(f, { l1: fake, l2: fake, good: honest });
    expect(f.info!.equals(INFO)).toBe(true);
    // The liars' copy, from both, blamed no one; the size that had not failed went next.
    const dropped = log.filter((e) => typeof e.result === 'object').map((e) => e.id);
    expect(dropped).toEqual([]);
    expect(log.filter((e) => e.id === 'good')).toHaveLength(PIECES);
  });

  it('liars that come back under new ports lose the vote once their size hashed wrong', () => {
    const f = new MetadataFetch(HASH, { maxPerPeer: 8 });
    const fakeSize = SIZE + 5000;
    const fake: Responder = (piece) => {
      const len = Math.min(METADATA_PIECE_SIZE, fakeSize - piece * METADATA_PIECE_SIZE);
      return { type: 'data', piece, totalSize: fakeSize, data: Buffer.alloc(len, 1) };
    };
    const peers: Record<string, Responder> = {};
    let n = 0;
    const liarBack = () => {
      const id = `liar${n++}`;
      f.addPeer(id, fakeSize);
      peers[id] = fake;
    };
    liarBack();
    liarBack();
    liarBack();
    f.addPeer('good', SIZE);
    peers['good'] = honest;
    let goodAsked = 0;
    for (let round = 0; round < 100 && f.info === null; round++) {
      for (const [id, respond] of Object.entries(peers)) {
        for (const piece of f.requestsFor(id)) {
          if (id === 'good') goodAsked++;
          const r = f.onMessage(id, respond(piece)!);
          if (typeof r === 'object') {
            // Dropped: back at once from another port, voting for its size again.
            delete peers[id];
            liarBack();
          }
        }
      }
    }
    expect(f.info!.equals(INFO)).toBe(true);
    // One attempt of the liars' size (three to one), then the honest size's own.
    expect(goodAsked).toBe(PIECES);
  });

  it('after FRUITLESS_ATTEMPTS mismatches, pieces received are no progress', () => {
    const f = new MetadataFetch(HASH, { maxPerPeer: 8 });
    for (let i = 0; i < FRUITLESS_ATTEMPTS; i++) {
      expect(f.piecesCount).toBe(true);
      f.addPeer(`liar${i}`, SIZE);
      const log = drive(f, { [`liar${i}`]: liar(1) });
      expect(log.at(-1)!.result).toEqual({ drop: expect.stringMatching(/info hash/) });
    }
    expect(f.piecesCount).toBe(false);
    // An honest peer still completes the fetch.
    f.addPeer('good', SIZE);
    drive(f, { good: honest });
    expect(f.info!.equals(INFO)).toBe(true);
  });

  it('a size whose peers send nothing gives way to another after METADATA_HEDGE_MS', () => {
    let now = 0;
    const f = new MetadataFetch(HASH, { now: () => now });
    // A tie: the smaller size, the liar's, is tried first. It never answers.
    const smaller = SIZE - 1000;
    f.addPeer('liar', smaller);
    f.addPeer('good', SIZE);
    expect(f.requestsFor('liar')).toEqual([0, 1]);
    expect(f.requestsFor('good')).toEqual([]);
    now += METADATA_HEDGE_MS - 1;
    expect(f.requestsFor('good')).toEqual([]);
    now += 1;
    expect(f.requestsFor('good')).toEqual([0, 1]);
    // The liar is not asked for the other size; its late answer is an answer, not a fault.
    expect(f.requestsFor('liar')).toEqual([]);
    const late = answerMetadataRequest(Buffer.alloc(smaller), 0);
    expect(f.onMessage('liar', { ...late, totalSize: smaller } as UtMetadataMessage)).toBe('ok');
    for (const piece of [0, 1]) expect(f.onMessage('good', dataMsg(piece))).toBe('ok');
    drive(f, { good: honest });
    expect(f.info!.equals(INFO)).toBe(true);
  });

  it('a size whose peers have begun to send keeps the attempt', () => {
    let now = 0;
    const f = new MetadataFetch(HASH, { now: () => now });
    f.addPeer('a', SIZE);
    f.addPeer('other', SIZE + 5000);
    expect(f.requestsFor('a')).toEqual([0, 1]);
    expect(f.onMessage('a', dataMsg(0))).toBe('ok');
    now += METADATA_HEDGE_MS * 2;
    expect(f.requestsFor('other')).toEqual([]);
  });

  it('peers of the most announced size that only reject do not keep another size waiting', () => {
    let now = 0;
    const f = new MetadataFetch(HASH, { now: () => now, requestTimeoutMs: 1e9 });
    const fakeSize = SIZE + 5000;
    f.addPeer('r1', fakeSize);
    f.addPeer('r2', fakeSize);
    f.addPeer('good', SIZE);
    const rejecter: Responder = (piece) => ({ type: 'reject', piece });
    const peers = { r1: rejecter, r2: rejecter, good: honest };
    // About a second per round, as the metadata swarm's tick: a minute at most.
    for (let round = 0; round < 60 && f.info === null; round++) {
      drive(f, peers);
      now += 1_000;
    }
    expect(f.info?.equals(INFO)).toBe(true);
    expect(f.peersWithMetadata()).toBe(3);
  });

  it('gives a request unanswered for the timeout to another peer; stops asking a peer after 2 timeouts', () => {
    let now = 0;
    const f = new MetadataFetch(HASH, { now: () => now });
    f.addPeer('slow', SIZE);
    f.addPeer('b', SIZE);
    expect(f.requestsFor('slow')).toEqual([0, 1]);
    expect(f.requestsFor('b')).toEqual([2, 3]);
    f.onMessage('b', dataMsg(2));
    f.onMessage('b', dataMsg(3));
    expect(f.requestsFor('b')).toEqual([]);
    now += METADATA_REQUEST_TIMEOUT_MS;
    expect(f.requestsFor('b')).toEqual([0, 1]);
    expect(MAX_TIMEOUTS).toBe(2);
    expect(f.peersWithMetadata()).toBe(1);
    expect(f.requestsFor('slow')).toEqual([]);
    // a late answer from the slow peer still counts
    expect(f.onMessage('slow', dataMsg(0))).toBe('ok');
    expect(f.onMessage('b', dataMsg(0))).toBe('ok');
    expect(f.onMessage('b', dataMsg(1))).toBe('done');
    expect(f.info!.equals(INFO)).toBe(true);
  });

  it('a slow peer asked twice for a piece answers twice: both answers are taken, no drop', () => {
    let now = 0;
    const f = new MetadataFetch(HASH, { now: () => now });
    f.addPeer('slow', SIZE);
    expect(f.requestsFor('slow')).toEqual([0, 1]);
    expect(f.onMessage('slow', dataMsg(1))).toBe('ok');
    now += 1_000;
    expect(f.requestsFor('slow')).toEqual([2]);
    // Piece 0 times out (a first strike) and, with no one else to ask, goes to the same peer.
    now += METADATA_REQUEST_TIMEOUT_MS - 1_000;
    expect(f.requestsFor('slow')).toEqual([0]);
    // Its answer to the first request, then to the second.
    expect(f.onMessage('slow', dataMsg(0))).toBe('ok');
    expect(f.onMessage('slow', dataMsg(0))).toBe('ok');
    expect(f.onMessage('slow', dataMsg(2))).toBe('ok');
    expect(f.requestsFor('slow')).toEqual([3]);
    expect(f.onMessage('slow', dataMsg(3))).toBe('done');
    // A third copy was never asked for: still a drop before the end.
    const g = new MetadataFetch(HASH);
    g.addPeer('a', SIZE);
    expect(g.requestsFor('a')).toEqual([0, 1]);
    expect(g.onMessage('a', dataMsg(0))).toBe('ok');
    expect(g.onMessage('a', dataMsg(0))).toEqual({ drop: expect.stringMatching(/not requested/) });
  });

  it('once no piece is left unasked, a piece asked of a silent peer is asked of an idle one too', () => {
    let now = 0;
    const f = new MetadataFetch(HASH, { now: () => now });
    f.addPeer('silent', SIZE);
    f.addPeer('b', SIZE);
    f.addPeer('c', SIZE);
    expect(f.requestsFor('silent')).toEqual([0, 1]);
    expect(f.requestsFor('b')).toEqual([2, 3]);
    expect(f.onMessage('b', dataMsg(2))).toBe('ok');
    expect(f.onMessage('b', dataMsg(3))).toBe('ok');
    // Not before METADATA_HEDGE_MS.
    now += METADATA_HEDGE_MS - 1;
    expect(f.requestsFor('b')).toEqual([]);
    expect(f.requestsFor('c')).toEqual([]);
    now += 1;
    expect(f.requestsFor('b')).toEqual([0, 1]);
    // A peer never asked anything is asked at once too: its worth is unknown, and peers that
    // never answer must not each take a turn of METADATA_HEDGE_MS before it.
    expect(f.requestsFor('c')).toEqual([0, 1]);
    expect(f.onMessage('b', dataMsg(0))).toBe('ok');
    // The silent peer's late copy answers a request it had: taken without a drop.
    expect(f.onMessage('silent', dataMsg(0))).toBe('ok');
    // A peer asked before gets a piece once per METADATA_HEDGE_MS: piece 1 was just asked of c.
    expect(f.requestsFor('b')).toEqual([]);
    // The first copy to arrive completes the metadata; the later ones answer requests made.
    expect(f.onMessage('c', dataMsg(1))).toBe('done');
    expect(f.info!.equals(INFO)).toBe(true);
    expect(f.onMessage('b', dataMsg(1))).toBe('ok');
    expect(f.onMessage('silent', dataMsg(1))).toBe('ok');
  });

  it('peers that announce the metadata and never send it do not hold back one that does', () => {
    let now = 0;
    const f = new MetadataFetch(HASH, { now: () => now });
    const silent = Array.from({ length: 10 }, (_, i) => `silent${i}`);
    for (const id of [...silent, 'honest']) f.addPeer(id, SIZE);
    // The silent peers ask first, every tick (as the swarm calls them in order).
    const tick = () => {
      for (const id of silent) f.requestsFor(id);
      return f.requestsFor('honest');
    };
    expect(tick()).toEqual([]);
    now += METADATA_HEDGE_MS;
    const asked = tick();
    expect(asked.length).toBeGreaterThan(0);
    let result = 'ok';
    for (;;) {
      for (const piece of asked.splice(0)) result = f.onMessage('honest', dataMsg(piece)) as string;
      if (result === 'done') break;
      asked.push(...f.requestsFor('honest'));
      expect(asked.length).toBeGreaterThan(0);
    }
    // Within one METADATA_HEDGE_MS of the first request, not one per silent peer.
    expect(now).toBe(METADATA_HEDGE_MS);
    expect(f.info!.equals(INFO)).toBe(true);
  });

  it('in exclusive mode nothing is hedged: the attempt has one source', () => {
    const { f, clock } = exclusiveFetch();
    expect(f.requestsFor('a')).toEqual([0, 1]);
    expect(f.requestsFor('b')).toEqual([]);
    clock.now += METADATA_HEDGE_MS - 1;
    expect(f.requestsFor('b')).toEqual([]);
  });

  it('in exclusive mode, a peer silent since it was asked hands the attempt to another', () => {
    const { f, clock, bad } = exclusiveFetch(['silent']);
    // the silent peer asks first and gets the attempt; it never answers
    expect(f.requestsFor('silent')).toEqual([0, 1]);
    clock.now += METADATA_HEDGE_MS - 1;
    expect(f.requestsFor('b')).toEqual([]);
    clock.now += 1;
    expect(f.requestsFor('b')).toEqual([0, 1]);
    expect(f.requestsFor('silent')).toEqual([]);
    // its late answer is not mixed into b's attempt
    expect(f.onMessage('silent', bad(0)!)).toBe('ok');
    for (const piece of [0, 1]) expect(f.onMessage('b', dataMsg(piece))).toBe('ok');
    drive(f, { b: honest });
    expect(f.info!.equals(INFO)).toBe(true);
  });

  it('in exclusive mode, a peer that has begun to send keeps its attempt', () => {
    const { f, clock } = exclusiveFetch();
    expect(f.requestsFor('a')).toEqual([0, 1]);
    expect(f.onMessage('a', dataMsg(0))).toBe('ok');
    clock.now += METADATA_HEDGE_MS * 2;
    expect(f.requestsFor('b')).toEqual([]);
  });

  it('a peer whose own requests just timed out is not given them back', () => {
    let now = 0;
    const f = new MetadataFetch(HASH, { now: () => now });
    f.addPeer('slow', SIZE);
    f.addPeer('b', SIZE);
    expect(f.requestsFor('slow')).toEqual([0, 1]);
    expect(f.requestsFor('b')).toEqual([2, 3]);
    f.onMessage('b', dataMsg(2));
    f.onMessage('b', dataMsg(3));
    now += METADATA_REQUEST_TIMEOUT_MS;
    // The slow peer asks first: its two requests expire (its second strike) as it asks.
    expect(f.requestsFor('slow')).toEqual([]);
    expect(f.requestsFor('b')).toEqual([0, 1]);
  });

  it('a peer that leaves frees its requests; a new handshake with another size replaces the old', () => {
    const f = new MetadataFetch(HASH);
    f.addPeer('a', SIZE);
    f.addPeer('b', SIZE);
    expect(f.requestsFor('a')).toEqual([0, 1]);
    f.removePeer('a');
    expect(f.peersWithMetadata()).toBe(1);
    expect(f.requestsFor('b')).toEqual([0, 1]);
    // b announces another size: its requests are dropped, the attempt restarts for that size
    expect(f.addPeer('b', SIZE - 1)).toBe(true);
    expect(f.requestsFor('b')).toEqual([0, 1]);
    expect(f.onMessage('b', dataMsg(0))).toEqual({ drop: expect.stringMatching(/total_size/) });
    // a peer that sends metadata_size 0 later is forgotten
    f.addPeer('c', SIZE);
    expect(f.addPeer('c', 0)).toBe(false);
    expect(f.peersWithMetadata()).toBe(0);
  });

  it('ignores requests and unknown messages', () => {
    const f = new MetadataFetch(HASH);
    f.addPeer('a', SIZE);
    expect(f.onMessage('a', { type: 'request', piece: 0 })).toBe('ok');
    expect(f.onMessage('a', { type: 'unknown', msgType: 7 })).toBe('ok');
    expect(f.onMessage('nobody', { type: 'reject', piece: 0 })).toBe('ok');
  });

  it('refuses a bad info hash', () => {
    expect(() => new MetadataFetch(Buffer.alloc(19))).toThrow(RangeError);
  });
});
