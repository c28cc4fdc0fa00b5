import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PeerConnection } from '../../src/peer/connection.js';
import { PeerExtensions, pexFlags } from '../../src/swarm/extensions.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import type { PeerAddress } from '../../src/tracker/types.js';
import { UT_PEX, encodeExtendedHandshake } from '../../src/wire/extension.js';
import { PEX_INTERVAL_MS, PexFlag, decodePex } from '../../src/wire/ut-pex.js';

/**
 * PeerExtensions over the parts of a connection it uses (recording what it sends), after the
 * peer's extension handshake offering ut_pex as id 7.
 */
function connected(privateTorrent: boolean): {
  ext: PeerExtensions;
  sent: { id: number; payload: Buffer }[];
} {
  const sent: { id: number; payload: Buffer }[] = [];
  const conn = {
    direction: 'out',
    host: '10.0.0.9',
    port: 6881,
    address: '10.0.0.9:6881',
    sendExtended: (id: number, payload: Buffer) => sent.push({ id, payload }),
  } as unknown as PeerConnection;
  const ext = new PeerExtensions(conn, {
    info: null,
    privateTorrent,
    onPeers: () => {},
    isOwn: () => false,
  });
  ext.onMessage(0, encodeExtendedHandshake({ m: new Map([[UT_PEX, 7]]) }));
  return { ext, sent };
}

const others: PeerAddress[] = [
  { host: '10.0.0.1', port: 6881 },
  { host: '10.0.0.2', port: 51413 },
];

describe('PeerExtensions: PEX', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('tells a peer our other peers a minute after its extension handshake, not at once', () => {
    const { ext, sent } = connected(false);
    // The peer has just heard the same tracker answer: an early list would only make it dial
    // peers it is already connected to.
    ext.sharePeers(Date.now(), others);
    ext.sharePeers(Date.now() + PEX_INTERVAL_MS - 1, others);
    expect(sent).toHaveLength(0);
    ext.sharePeers(Date.now() + PEX_INTERVAL_MS, others);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.id).toBe(7);
    expect(decodePex(sent[0]!.payload).added).toEqual(others);
  });

  it('keeps its PEX state when the peer repeats its extension handshake', () => {
    const { ext, sent } = connected(false);
    const start = Date.now();
    vi.setSystemTime(start + PEX_INTERVAL_MS / 2);
    ext.onMessage(0, encodeExtendedHandshake({ m: new Map([[UT_PEX, 7]]) }));
    ext.sharePeers(start + PEX_INTERVAL_MS, others);
    expect(sent).toHaveLength(1);
    // What it was told is remembered: the same peers are not listed again.
    ext.onMessage(0, encodeExtendedHandshake({ m: new Map([[UT_PEX, 7]]) }));
    ext.sharePeers(start + 3 * PEX_INTERVAL_MS, others);
    expect(sent).toHaveLength(1);
  });

  it('never exchanges peers on a private torrent', () => {
    const { ext, sent } = connected(true);
    ext.sharePeers(Date.now() + 10 * PEX_INTERVAL_MS, others);
    expect(sent).toHaveLength(0);
  });
});

describe('PeerExtensions: PEX flags', () => {
  it('say what we know of each peer: MSE, seed, reachable', () => {
    const full = new Bitfield(8);
    for (let i = 0; i < 8; i++) full.set(i);
    const conn = (encryption: string, direction: string, bitfield: Bitfield) =>
      ({ encryption, direction, bitfield }) as unknown as PeerConnection;
    expect(pexFlags(conn('none', 'in', new Bitfield(8)))).toBe(0);
    expect(pexFlags(conn('rc4', 'in', new Bitfield(8)))).toBe(PexFlag.encryption);
    expect(pexFlags(conn('handshake', 'out', full))).toBe(
      PexFlag.encryption | PexFlag.seed | PexFlag.reachable,
    );
    expect(pexFlags(conn('none', 'out', full))).toBe(PexFlag.seed | PexFlag.reachable);
  });

  it('go out with the peers they describe', () => {
    const { ext, sent } = connected(false);
    const flagged = [
      { ...others[0]!, flags: PexFlag.seed },
      { ...others[1]!, flags: PexFlag.encryption | PexFlag.reachable },
    ];
    ext.sharePeers(Date.now() + PEX_INTERVAL_MS, flagged);
    const m = decodePex(sent[0]!.payload);
    expect(m.added).toEqual(others);
    expect(m.addedFlags).toEqual([PexFlag.seed, PexFlag.encryption | PexFlag.reachable]);
  });
});
