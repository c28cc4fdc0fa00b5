import { describe, expect, it } from 'vitest';
import { NoPeersError, TransferError } from '../../src/errors.js';
import {
  connectedDetail,
  MAX_PROBLEM_CHARS,
  noPeersError,
  sourceFailures,
  stalledError,
  type StallFacts,
} from '../../src/swarm/stall-report.js';
import type { Session } from '../../src/swarm/session.js';
import type { PeerSource } from '../../src/swarm/download-api.js';
import type { WebSeeds } from '../../src/webseed/scheduler.js';

function session(amInterested: boolean, peerChoking: boolean, wanted = 0): Session {
  return { conn: { amInterested, peerChoking }, wanted } as unknown as Session;
}

function facts(over: Partial<StallFacts> = {}): StallFacts {
  return {
    sessions: [],
    candidates: 0,
    otherFamily: 0,
    lastFailure: '',
    tracker: undefined,
    sources: [],
    webSeeds: null,
    ...over,
  };
}

const failing = (failures: { url: string; message: string }[]): PeerSource =>
  ({ failures }) as unknown as PeerSource;

describe('what a download that gets nothing says', () => {
  it('counts the connected peers with nothing needed, those choking us, and the silent', () => {
    const s = [
      session(false, true),
      session(true, true),
      session(true, true),
      session(true, false),
    ];
    expect(connectedDetail(s)).toEqual([
      '1 with none of the pieces still needed',
      '2 choking us (not letting us download)',
      '1 letting us download but sending nothing',
    ]);
    expect(connectedDetail([])).toEqual([]);
  });

  it('--max-peers 1: a peer with some of the pieces needed is not said to have none', () => {
    // Single-peer mode is interested only in a peer that has every piece.
    expect(connectedDetail([session(false, true, 12), session(false, true, 0)])).toEqual([
      '1 with none of the pieces still needed',
      '1 with some of the pieces needed but not every piece, which --max-peers 1 asks of its peer',
    ]);
  });

  it("no usable peer: addresses left out for being tdl's own are said", () => {
    expect(noPeersError(facts({ own: 1 }), 5000).message).toBe(
      "no usable peer within 5s (no peer address but tdl's own; 1 address left out for being tdl's own (its port on this machine))",
    );
    expect(noPeersError(facts({ candidates: 2, own: 2 }), 5000).message).toBe(
      "no usable peer within 5s (2 peer addresses tried; 2 addresses left out for being tdl's own (its port on this machine))",
    );
  });

  it('no usable peer: what was tried, the other family, the last problems (three named)', () => {
    const e = noPeersError(
      facts({
        candidates: 2,
        otherFamily: 1,
        lastFailure: '127.0.0.1:6881: connection refused',
        tracker: failing([
          { url: 'http://t1/announce', message: 'timed out' },
          { url: 'http://t2/announce', message: 'HTTP 500' },
        ]),
        sources: [{ origin: 'dht', source: failing([{ url: '', message: 'no nodes' }]) }],
        webSeeds: {
          seeds: [{ lastError: new Error('http://w/: HTTP 404') }],
        } as unknown as WebSeeds,
      }),
      1500,
    );
    expect(e).toBeInstanceOf(NoPeersError);
    expect(e.message).toBe(
      'no usable peer within 1.5s (2 peer addresses tried; 1 of the other address family than ' +
        '--bind left out (IPv4 and IPv6 do not mix); last: 127.0.0.1:6881: connection refused; ' +
        'tracker http://t1/announce: timed out; tracker http://t2/announce: HTTP 500; dht: no nodes; ' +
        'and 1 more)',
    );
    expect(noPeersError(facts(), 30_000).message).toBe(
      'no usable peer within 30s (no peer addresses found)',
    );
  });

  it("names a tracker's failure by its URL and another source's by its origin", () => {
    expect(
      sourceFailures([
        {
          origin: 'tracker',
          source: failing([{ url: 'udp://t:1/announce', message: 'no answer yet' }]),
        },
        { origin: 'dht', source: failing([{ url: 'dht', message: 'no DHT node answered' }]) },
      ]),
    ).toEqual(['tracker udp://t:1/announce: no answer yet', 'dht: no DHT node answered']);
  });

  it('no data: the peers connected and the last peer problem', () => {
    const e = stalledError(
      facts({ sessions: [session(true, true)], lastFailure: '10.0.0.1:1: choked us' }),
      60_000,
    );
    expect(e).toBeInstanceOf(TransferError);
    expect(e.message).toBe(
      'no data for 60s (1 peer connected: 1 choking us (not letting us download)); ' +
        'last peer problem: 10.0.0.1:1: choked us',
    );
    expect(stalledError(facts(), 5_000).message).toBe('no data for 5s (0 peers connected)');
  });

  it('no data: the pieces still needed that no connected peer has', () => {
    const three = [session(false, false), session(false, false), session(false, false)];
    expect(
      stalledError(facts({ sessions: three, needed: { pieces: 1, nowhere: 1 } }), 15_000).message,
    ).toBe(
      'no data for 15s (3 peers connected: 3 with none of the pieces still needed); ' +
        '1 piece still needed, on no connected peer',
    );
    expect(stalledError(facts({ needed: { pieces: 40, nowhere: 3 } }), 5_000).message).toBe(
      'no data for 5s (0 peers connected); 40 pieces still needed, 3 of them on no connected peer',
    );
    // What the peer sources said last, too (the peers with those pieces may be theirs).
    const tracker = failing([{ url: 'http://t/announce', message: 'HTTP 500' }]);
    expect(stalledError(facts({ tracker, needed: { pieces: 2, nowhere: 2 } }), 5_000).message).toBe(
      'no data for 5s (0 peers connected); 2 pieces still needed, on no connected peer; ' +
        'tracker http://t/announce: HTTP 500',
    );
    // All of them on some peer: nothing to add.
    expect(stalledError(facts({ needed: { pieces: 40, nowhere: 0 } }), 5_000).message).toBe(
      'no data for 5s (0 peers connected)',
    );
  });

  it("cuts a long problem (a tracker's 1,024-character reason, shown whole in its warning)", () => {
    const reason = 'x'.repeat(1024);
    const tracker = failing([{ url: 'http://t/announce', message: reason }]);
    const msg = noPeersError(facts({ tracker }), 5000).message;
    const shown = `tracker http://t/announce: ${reason}`.slice(0, MAX_PROBLEM_CHARS - 1) + '…';
    expect(msg).toBe(`no usable peer within 5s (no peer addresses found; ${shown})`);
    const webSeeds = {
      seeds: [{ lastError: new Error(`http://w/: ${reason}`) }],
    } as unknown as WebSeeds;
    expect(stalledError(facts({ webSeeds }), 5000).message).toBe(
      `no data for 5s (0 peers connected); ${`http://w/: ${reason}`.slice(0, MAX_PROBLEM_CHARS - 1)}…`,
    );
  });
});
