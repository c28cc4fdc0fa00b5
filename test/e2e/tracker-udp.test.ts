import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { TrackerError } from '../../src/errors.js';
import { announceUdp } from '../../src/tracker/udp.js';
import type { AnnounceRequest } from '../../src/tracker/types.js';
import { startUdpTracker, type FakeUdpTracker } from '../helpers/fake-tracker.js';

const request: AnnounceRequest = {
  infoHash: Buffer.alloc(20, 0x11),
  peerId: Buffer.from('-TD0001-0123456789ab', 'latin1'),
  port: 6881,
  uploaded: 1,
  downloaded: 2,
  left: 3,
  event: 'started',
  key: 42,
};
const fast = { firstWaitMs: 150, maxWaitMs: 300, maxTries: 3 };

const trackers: FakeUdpTracker[] = [];
async function tracker(opts: Parameters<typeof startUdpTracker>[0]): Promise<FakeUdpTracker> {
  const t = await startUdpTracker(opts);
  trackers.push(t);
  return t;
}
afterEach(async () => {
  await Promise.all(trackers.splice(0).map((t) => t.close()));
});

describe('announceUdp against a fake tracker', () => {
  it('connects, announces and gets peers; the tracker sees the exact request', async () => {
    const t = await tracker({
      peers: [
        { host: '127.0.0.1', port: 7001 },
        { host: '127.0.0.2', port: 7002 },
      ],
      interval: 600,
      leechers: 4,
    });
    const res = await announceUdp(t.url, request, { retry: fast });
    expect(res.peers).toEqual([
      { host: '127.0.0.1', port: 7001 },
      { host: '127.0.0.2', port: 7002 },
    ]);
    expect(res).toMatchObject({ interval: 600, incomplete: 4, complete: 2 });
    const a = t.announces[0]!;
    expect(a.infoHash.equals(request.infoHash)).toBe(true);
    expect(a.peerId.equals(request.peerId)).toBe(true);
    expect(a).toMatchObject({ port: 6881, uploaded: 1, downloaded: 2, left: 3, event: 'started' });
    expect(a.numWant).toBe(-1);
    expect(a.key).toBe('42');
  });

  it("sends the URL's path and query (BEP 41), so that a passkey in it reaches the tracker", async () => {
    const t = await tracker({
      peers: [{ host: '127.0.0.1', port: 7001 }],
      urlData: '/a1b2c3/announce?passkey=s3cret',
    });
    const res = await announceUdp(`${t.url}/a1b2c3/announce?passkey=s3cret`, request, {
      retry: fast,
    });
    expect(res.peers).toEqual([{ host: '127.0.0.1', port: 7001 }]);
    expect(t.announces.map((a) => a.urlData)).toEqual(['/a1b2c3/announce?passkey=s3cret']);
    // Without the path the tracker cannot tell who asks.
    await expect(announceUdp(t.url, request, { retry: fast })).rejects.toThrow(
      /unregistered passkey/,
    );
    expect(t.announces.at(-1)!.urlData).toBe('');
  });

  it('refuses a path and query too long for a datagram without sending anything', async () => {
    const t = await tracker({ peers: [] });
    const url = `${t.url}/announce?passkey=${'k'.repeat(2000)}`;
    await expect(announceUdp(url, request, { retry: fast })).rejects.toThrow(
      /path and query are too long for a UDP announce: 2018 bytes, at most 1024/,
    );
    expect(t.stats.packets).toBe(0);
  });

  it('over IPv6, reads 18-byte peer entries', async (ctx) => {
    let t: FakeUdpTracker;
    try {
      t = await tracker({ host: '::1', peers: [{ host: '2001:db8::7', port: 7008 }] });
    } catch {
      ctx.skip(); // no IPv6 loopback here
      return;
    }
    const res = await announceUdp(t.url, request, { retry: fast });
    expect(res.peers).toEqual([{ host: '2001:db8::7', port: 7008 }]);
    expect(t.announces[0]?.remoteAddress).toBe('::1');
  });

  it('uses a connection id only on its own socket, never in a later announce', async () => {
    // Each announce has a socket (a source port) of its own, and trackers may tie the id to
    // the address and port it was sent to: Torrust answers an error for another one, and bans
    // an address after 10 of them.
    const t = await tracker({ peers: [] });
    await announceUdp(t.url, request, { retry: fast });
    await announceUdp(t.url, { ...request, event: undefined }, { retry: fast });
    await announceUdp(t.url, { ...request, event: 'stopped' }, { retry: fast });
    expect(t.stats.idErrors).toBe(0);
    expect(t.stats.connects).toBe(3);
    expect(t.announces.map((a) => a.event)).toEqual(['started', undefined, 'stopped']);
  });

  it('retransmits when the first packets are lost', async () => {
    const t = await tracker({ dropFirst: 2, peers: [{ host: '127.0.0.1', port: 7003 }] });
    const started = Date.now();
    const res = await announceUdp(t.url, request, { retry: fast });
    expect(res.peers).toEqual([{ host: '127.0.0.1', port: 7003 }]);
    expect(t.stats.dropped).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150 + 300 - 20);
  });

  it('surfaces an error reply as a TrackerError with the message', async () => {
    const t = await tracker({ errorMessage: 'torrent not allowed here' });
    const err = await announceUdp(t.url, request, { retry: fast }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrackerError);
    expect((err as Error).message).toContain('torrent not allowed here');
    expect((err as Error).message).toContain(t.url);
  });

  it('ignores replies with a wrong transaction id, then times out', async () => {
    const t = await tracker({ wrongTransactionId: true });
    const started = Date.now();
    const err = await announceUdp(t.url, request, { retry: fast }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(TrackerError);
    expect((err as Error).message).toMatch(/no reply after 3 tries/);
    expect(t.stats.packets).toBe(3); // every try was answered, wrongly
    expect(elapsed).toBeGreaterThanOrEqual(150 + 300 + 300 - 20);
    expect(elapsed).toBeLessThan(3000);
  });

  it('ignores short and garbage packets, then takes the right reply', async () => {
    // A hand-made tracker that sends junk before each real reply.
    const sock = dgram.createSocket('udp4');
    let connectionId = Buffer.from('0102030405060708', 'hex');
    sock.on('message', (msg, rinfo) => {
      const tid = msg.readUInt32BE(12);
      const send = (b: Buffer): void => void sock.send(b, rinfo.port, rinfo.address);
      send(Buffer.from([1, 2, 3]));
      send(Buffer.from('00000009000000000000', 'hex'));
      if (msg.readUInt32BE(8) === 0) {
        const out = Buffer.alloc(16);
        out.writeUInt32BE(tid, 4);
        connectionId.copy(out, 8);
        send(out.subarray(0, 12)); // truncated first
        send(out);
      } else {
        const out = Buffer.alloc(26);
        out.writeUInt32BE(1, 0);
        out.writeUInt32BE(tid, 4);
        out.writeUInt32BE(60, 8);
        Buffer.from('7f0000051b58', 'hex').copy(out, 20);
        send(out);
      }
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    try {
      const res = await announceUdp(`udp://127.0.0.1:${sock.address().port}/announce`, request, {
        retry: fast,
      });
      expect(res.peers).toEqual([{ host: '127.0.0.5', port: 7000 }]);
      expect(res.interval).toBe(60);
    } finally {
      connectionId = Buffer.alloc(0);
      await new Promise<void>((r) => sock.close(() => r()));
    }
  });

  it('fails fast on a closed port, and on bad URLs', async () => {
    const t = await startUdpTracker();
    const url = t.url;
    await t.close();
    const started = Date.now();
    const err = await announceUdp(url, request, { retry: fast }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrackerError);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(announceUdp('udp://127.0.0.1', request)).rejects.toThrow(/no port/);
    await expect(announceUdp('http://127.0.0.1:1', request)).rejects.toThrow(/unsupported/);
  });

  it('honours timeoutMs and an abort signal', async () => {
    const t = await tracker({ dropFirst: Infinity });
    await expect(announceUdp(t.url, request, { timeoutMs: 200 })).rejects.toThrow(
      /timed out after 200 ms/,
    );
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await expect(announceUdp(t.url, request, { signal: ac.signal })).rejects.toThrow(/aborted/);
  });
});
