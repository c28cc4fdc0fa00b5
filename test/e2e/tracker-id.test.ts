/**
 * BEP 3 `tracker id`: what an HTTP tracker gives is sent back to it, as it came, in every later
 * announce (regular, completed, stopped); a reply without one keeps the one given before.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { encode } from '../../src/metainfo/bencode.js';
import { parseQueryBytes, startHttpTracker, testAnnouncer } from '../helpers/fake-tracker.js';
import { until } from '../helpers/tdl-process.js';

const infoHash = Buffer.alloc(20, 0x44);
const peerId = Buffer.from('-TD0001-trackerid000', 'latin1');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('tracker id', () => {
  it('is echoed in later announces, kept when a reply omits it, replaced by a new one', async () => {
    // Bytes that are not text and need escaping: they must come back exactly.
    const first = Buffer.from([0x00, 0x41, 0xff, 0x20, 0x26, 0x3d]);
    const second = Buffer.from('id-2', 'latin1');
    /** The tracker id each announce carried (undefined: none), with its event. */
    const seen: { event: string | undefined; trackerId: Buffer | undefined }[] = [];
    const tr = await startHttpTracker({
      handler: (req, res) => {
        const url = req.url ?? '';
        const q = parseQueryBytes(url.slice(url.indexOf('?') + 1));
        seen.push({ event: q.get('event')?.toString('latin1'), trackerId: q.get('trackerid') });
        // 1st reply gives an id, the 2nd none, the 3rd a new one; later ones none.
        const n = seen.length;
        const reply: Record<string, unknown> = {
          interval: 1800,
          'min interval': 0,
          peers: Buffer.alloc(0),
        };
        if (n === 1) reply['tracker id'] = first;
        if (n === 3) reply['tracker id'] = second;
        res.end(encode(reply));
      },
    });
    cleanups.push(() => tr.close());
    const a = testAnnouncer(
      { announceList: [[tr.url]], infoHash, peerId, timing: { requestMoreMinMs: 10 } },
      (c) => cleanups.push(c),
    );
    let answers = 0;
    a.on('announce', () => answers++);
    a.start();
    for (let n = 1; n <= 3; n++) {
      await until(() => answers === n, 15_000, `answer ${n}`);
      if (n < 3) a.requestMore();
    }
    await a.complete();
    await a.stop();
    expect(seen.map((s) => s.event)).toEqual([
      'started',
      undefined,
      undefined,
      'completed',
      'stopped',
    ]);
    expect(seen.map((s) => s.trackerId)).toEqual([undefined, first, first, second, second]);
  });
});
