import { afterEach, describe, expect, it } from 'vitest';
import { TrackerError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import { MAX_TRACKER_BODY_BYTES, announceHttp } from '../../src/tracker/http.js';
import type { AnnounceRequest } from '../../src/tracker/types.js';
import { startHttpTracker, type FakeTracker } from '../helpers/fake-tracker.js';
import { freePort as closedPort } from '../helpers/ports.js';

const infoHash = Buffer.from('00ff7e2d41207a2b2e5f25267e80c0fe10203040', 'hex');
const peerId = Buffer.from('-TD0001-0123456789ab', 'latin1');
const request: AnnounceRequest = {
  infoHash,
  peerId,
  port: 6881,
  uploaded: 10,
  downloaded: 20,
  left: 30,
  event: 'started',
  numWant: 80,
};

const trackers: FakeTracker[] = [];
async function tracker(opts: Parameters<typeof startHttpTracker>[0]): Promise<FakeTracker> {
  const t = await startHttpTracker(opts);
  trackers.push(t);
  return t;
}
afterEach(async () => {
  await Promise.all(trackers.splice(0).map((t) => t.close()));
});

describe('announceHttp against a fake tracker', () => {
  it('announces and gets compact peers; the tracker sees the exact request', async () => {
    const t = await tracker({
      peers: [
        { host: '127.0.0.1', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      interval: 120,
      warning: 'be nice',
    });
    const res = await announceHttp(t.url, request);
    expect(res.peers).toEqual([
      { host: '127.0.0.1', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
    expect(res.interval).toBe(120);
    expect(res.warning).toBe('be nice');
    expect(t.announces).toHaveLength(1);
    const a = t.announces[0]!;
    expect(a.infoHash.equals(infoHash)).toBe(true);
    expect(a.peerId.equals(peerId)).toBe(true);
    expect(a).toMatchObject({ port: 6881, uploaded: 10, downloaded: 20, left: 30 });
    expect(a.event).toBe('started');
    expect(a.numWant).toBe(80);
  });

  it('handles the dictionary form and a URL that already has a query string', async () => {
    const t = await tracker({ compact: false, peers: [{ host: '127.0.0.2', port: 7003 }] });
    const res = await announceHttp(`${t.url}?passkey=s3cr%2Ft`, request);
    expect(res.peers).toEqual([{ host: '127.0.0.2', port: 7003 }]);
    expect(t.announces[0]?.infoHash.equals(infoHash)).toBe(true);
  });

  it('a failure reason rejects with a TrackerError naming the tracker and the reason', async () => {
    const t = await tracker({ failure: 'unregistered torrent' });
    const err = await announceHttp(t.url, request).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrackerError);
    expect((err as Error).message).toContain('unregistered torrent');
    expect((err as Error).message).toContain(t.url);
  });

  it('cuts a 2 MiB body at the cap without reading it all', async () => {
    const total = 2 * 1024 * 1024;
    let written = 0;
    let writtenWhenClosed = -1;
    const t = await tracker({
      handler: (_req, res) => {
        res.writeHead(200); // no content-length: the cap must be enforced while streaming
        const chunk = Buffer.alloc(16 * 1024, 0x61);
        res.on('close', () => {
          writtenWhenClosed = written;
        });
        res.write(`d5:peers${total}:`);
        // One chunk per timer tick, so the client has the chance to hang up mid-way.
        const pump = (): void => {
          if (res.destroyed || written >= total) {
            if (!res.destroyed) res.end('e');
            return;
          }
          res.write(chunk);
          written += chunk.length;
          setTimeout(pump, 1);
        };
        pump();
      },
    });
    const err = await announceHttp(t.url, request).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrackerError);
    expect((err as Error).message).toContain(`larger than ${MAX_TRACKER_BODY_BYTES} bytes`);
    expect((err as Error).message).toContain(t.url);
    for (let i = 0; i < 100 && writtenWhenClosed < 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    // The client hung up soon after the cap, long before the 2 MiB were sent.
    expect(writtenWhenClosed).toBeGreaterThan(0);
    expect(writtenWhenClosed).toBeLessThan(total);
  });

  it('refuses a declared content-length over the cap up front', async () => {
    const t = await tracker({
      handler: (_req, res) => {
        res.writeHead(200, { 'content-length': String(MAX_TRACKER_BODY_BYTES + 1) });
        res.write('d');
      },
    });
    await expect(announceHttp(t.url, request)).rejects.toThrow(/larger than/);
  });

  it('a body that never ends is cut by the timeout', async () => {
    const timers: NodeJS.Timeout[] = [];
    const t = await tracker({
      handler: (_req, res) => {
        res.writeHead(200);
        // Trickle bytes so that only a whole-request deadline can stop it.
        const tick = setInterval(() => res.write('1'), 50);
        timers.push(tick);
        res.on('close', () => clearInterval(tick));
        res.write('d5:peers99999:');
      },
    });
    const started = Date.now();
    try {
      const err = await announceHttp(t.url, request, { timeoutMs: 400 }).catch((e: unknown) => e);
      const elapsed = Date.now() - started;
      expect(err).toBeInstanceOf(TrackerError);
      expect((err as Error).message).toMatch(/timed out after 400 ms/);
      expect(elapsed).toBeLessThan(2000);
    } finally {
      timers.forEach(clearInterval);
    }
  });

  it('informational replies without end are refused after 16, not at the timeout', async () => {
    const t = await tracker({
      handler: (_req, res) => {
        for (let i = 0; i < 1000; i++) res.writeProcessing();
      },
    });
    const err = await announceHttp(t.url, request, { timeoutMs: 8000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrackerError);
    expect((err as Error).message).toContain('more than 16 informational (1xx) replies');
  });

  it('headers that never come are cut by the timeout', async () => {
    const t = await tracker({ handler: () => undefined });
    await expect(announceHttp(t.url, request, { timeoutMs: 300 })).rejects.toThrow(/timed out/);
  });

  it('follows an http redirect but refuses one to ftp:', async () => {
    const target = await tracker({ peers: [{ host: '127.0.0.3', port: 7004 }] });
    const redirect = await tracker({
      handler: (req, res) => {
        const q = req.url!.slice(req.url!.indexOf('?'));
        res.writeHead(302, { location: `${target.url}${q}` });
        res.end();
      },
    });
    const res = await announceHttp(redirect.url, request);
    expect(res.peers).toEqual([{ host: '127.0.0.3', port: 7004 }]);
    expect(target.announces[0]?.infoHash.equals(infoHash)).toBe(true);

    const ftp = await tracker({
      handler: (_req, res) => {
        res.writeHead(301, { location: 'ftp://127.0.0.1/announce' });
        res.end();
      },
    });
    const err = await announceHttp(ftp.url, request).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrackerError);
    expect((err as Error).message).toMatch(/redirect to unsupported scheme ftp:/);
  });

  it('stops after a few redirects', async () => {
    const loop = await tracker({
      handler: (req, res) => {
        res.writeHead(307, { location: req.url! });
        res.end();
      },
    });
    await expect(announceHttp(loop.url, request)).rejects.toThrow(/more than \d+ redirects/);
    expect(loop.announces.length).toBeLessThanOrEqual(4);
  });

  it('non-200 statuses, garbage bodies and closed ports are TrackerErrors', async () => {
    const notFound = await tracker({
      handler: (_req, res) => {
        res.writeHead(404);
        res.end('nope');
      },
    });
    await expect(announceHttp(notFound.url, request)).rejects.toThrow(/HTTP status 404/);
    const html = await tracker({
      handler: (_req, res) => {
        res.writeHead(200);
        res.end('<html>hi</html>');
      },
    });
    await expect(announceHttp(html.url, request)).rejects.toThrow(/not valid bencode/);
    const port = await closedPort();
    const err = await announceHttp(`http://127.0.0.1:${port}/announce`, request).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TrackerError);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
  });

  it('rejects bad URLs and honours an abort signal', async () => {
    await expect(announceHttp('not a url', request)).rejects.toThrow(TrackerError);
    await expect(announceHttp('udp://127.0.0.1:1', request)).rejects.toThrow(/unsupported/);
    const t = await tracker({ handler: () => undefined });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await expect(announceHttp(t.url, request, { signal: ac.signal })).rejects.toThrow(/aborted/);
  });

  it('the fake tracker answers a hand-made request with bencode', async () => {
    const t = await tracker({ peers: () => [{ host: '127.0.0.9', port: 9 }], interval: 5 });
    const res = await announceHttp(t.url, { ...request, event: undefined });
    expect(res).toMatchObject({ interval: 5, peers: [{ host: '127.0.0.9', port: 9 }] });
    expect(t.announces[0]?.event).toBeUndefined();
    expect(encode({ a: 1 }).toString()).toBe('d1:ai1ee');
  });
});
