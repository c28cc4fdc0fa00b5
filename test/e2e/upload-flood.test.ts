/**
 * Peers that ask without reading the answers, against a real `tdl seed`: a choked peer with the
 * fast extension that stops reading and floods requests (each one owed a BEP 6 `reject`), and
 * one that floods ut_metadata requests for a piece that does not exist (each owed a BEP 9
 * `reject`). What tdl holds for such a peer is bounded (its peak RSS stays low) and tdl closes
 * the connection; an honest leecher from another address still gets every byte.
 *
 * Without the bounds a 39 MiB flood of requests took tdl from 51 to 484 MiB of RSS, the
 * connection still open.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { encode } from '../../src/metainfo/bencode.js';
import { LOCAL_EXTENSION_IDS, UT_METADATA } from '../../src/wire/extension.js';
import { FakeLeecher } from '../helpers/fake-leecher.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, type TdlProcess } from '../helpers/tdl-process.js';
import { randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';

const PIECE = 32768;
const SIZE = 1024 * 1024;
const data = randomBytesSeeded(SIZE, 'upload-flood');
const FLOODER = '127.0.4.20';
const HONEST = '127.0.4.21';
/** The most a flooder sends (tdl closes it long before, with the bounds). */
const FLOOD_BYTES = 48 * 1024 * 1024;
/** Peak RSS allowed: tdl seeding 1 MiB starts at about 50 MiB. */
const RSS_BOUND = 150 * 1024 * 1024;

const fx = useFixture();

beforeAll(() => assertBuilt());

let seq = 0;
function peerId(): Buffer {
  return Buffer.from(`-FL0002-${String(++seq).padStart(12, '0')}`);
}

async function leecher(
  t: MadeTorrent,
  port: number,
  from: string,
  o: { extended?: boolean } = {},
): Promise<FakeLeecher> {
  const l = await FakeLeecher.connect({
    port,
    infoHash: t.infoHash,
    peerId: peerId(),
    fast: true,
    extended: o.extended ?? false,
    localAddress: from,
    keepBlocks: false,
    checkAgainst: { data, pieceLength: PIECE },
  });
  fx.onClose(() => l.close());
  return l;
}

/**
 * Sends `chunk` over and over, each once the last is handed to the OS, until tdl closes the
 * connection or FLOOD_BYTES are sent; samples tdl's peak RSS meanwhile. Returns the peak.
 */
async function flood(l: FakeLeecher, chunk: Buffer, tdl: TdlProcess): Promise<number> {
  let peak = 0;
  const sample = () => (peak = Math.max(peak, tdl.peakRss() ?? 0));
  const sampler = setInterval(sample, 50);
  try {
    while (!l.isClosed && l.bytesSent < FLOOD_BYTES) {
      l.send(chunk);
      // A tdl that stopped reading would hold the write forever: the close ends the wait too.
      await Promise.race([l.flush(), l.closed]);
    }
    // What was sent is still being answered: the close may come a little after.
    await Promise.race([l.closed, new Promise((r) => setTimeout(r, 20_000))]);
  } finally {
    clearInterval(sampler);
  }
  sample();
  return peak;
}

async function honestGetsAll(t: MadeTorrent, port: number): Promise<void> {
  const l = await leecher(t, port, HONEST);
  await l.waitHandshake();
  expect(await l.downloadAll(SIZE, PIECE, { timeoutMs: 60_000 })).toBe(SIZE);
  expect(l.badBlocks).toBe(0);
}

describe('peers that ask and do not read the answers', () => {
  it('a choked fast peer that floods requests: memory stays bounded and tdl closes it', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE);
    const h = await leecher(t, port, FLOODER);
    await h.waitHandshake();
    // Never interested, so never unchoked: every request is owed a reject.
    h.pause();
    const one = Buffer.alloc(17);
    one.writeUInt32BE(13, 0);
    one[4] = 6;
    one.writeUInt32BE(3, 5);
    one.writeUInt32BE(0, 9);
    one.writeUInt32BE(16384, 13);
    const peak = await flood(h, Buffer.concat(Array.from({ length: 65536 }, () => one)), tdl);
    const mib = `${h.bytesSent >> 20} MiB sent, peak RSS ${peak >> 20} MiB`;
    expect(h.isClosed, mib).toBe(true);
    expect(h.bytesSent).toBeLessThan(FLOOD_BYTES);
    expect(h.blocksReceived).toBe(0);
    expect(peak).toBeGreaterThan(0);
    expect(peak, mib).toBeLessThan(RSS_BOUND);
    await honestGetsAll(t, port);
    expect(tdl.child.exitCode).toBeNull();
  }, 120_000);

  it('a peer that floods ut_metadata requests: memory stays bounded and tdl closes it', async () => {
    const { t, tdl, port } = await fx.tdlSeed(data, PIECE);
    const h = await leecher(t, port, FLOODER, { extended: true });
    await h.waitHandshake();
    h.sendExtendedHandshake({ m: { ut_metadata: 3 } });
    h.pause();
    // A request for a metadata piece far beyond the info dictionary: rejected every time.
    const id = LOCAL_EXTENSION_IDS[UT_METADATA];
    const msg = encode({ msg_type: 0, piece: 1000 });
    const one = Buffer.alloc(6 + msg.length);
    one.writeUInt32BE(2 + msg.length, 0);
    one[4] = 20;
    one[5] = id;
    msg.copy(one, 6);
    const peak = await flood(h, Buffer.concat(Array.from({ length: 32768 }, () => one)), tdl);
    const mib = `${h.bytesSent >> 20} MiB sent, peak RSS ${peak >> 20} MiB`;
    expect(h.isClosed, mib).toBe(true);
    expect(h.bytesSent).toBeLessThan(FLOOD_BYTES);
    expect(peak).toBeGreaterThan(0);
    expect(peak, mib).toBeLessThan(RSS_BOUND);
    await honestGetsAll(t, port);
    expect(tdl.child.exitCode).toBeNull();
  }, 120_000);
});
