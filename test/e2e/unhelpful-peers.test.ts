/**
 * Peers that look alive but never help: one that keeps the connection busy with keep-alives and
 * never sends a block, one that rejects every request (fast extension). Beside a good seeder the
 * download finishes; the rejecter is not asked again and again; with --max-peers 1 either gives
 * the only slot up.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeHandshake, ourReserved } from '../../src/wire/handshake.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { startHostilePeer, type HostileScript } from '../helpers/hostile-peer.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 32768;
const data = randomBytesSeeded(384 * 1024, 'unhelpful');
const t = makeTorrent({ name: 'a.bin', pieceLength: PIECE, files: { data } });
const pieceCount = t.pieces.length;

/** Claims every piece, unchokes, never sends a block; a keep-alive every 2 s. */
const keepAliveOnly: HostileScript = async (c) => {
  await c.becomeReadySeeder(t.infoHash, pieceCount);
  while (!c.isClosed) {
    await c.sleep(2_000);
    await c.send({ type: 'keep-alive' });
  }
};

/** Fast extension: have-all, unchoke, then a reject for every request. */
const rejecter: HostileScript = async (c) => {
  await c.readHandshake();
  await c.write(encodeHandshake(t.infoHash, Buffer.from('-RJ0001-rejecter!!!!'), ourReserved()));
  await c.send({ type: 'have-all' });
  await c.waitForMessage('interested');
  await c.send({ type: 'unchoke' });
  for (;;) {
    const m = await c.nextMessage(120_000);
    if (m.type === 'request') {
      await c.send({ type: 'reject', index: m.index, begin: m.begin, length: m.length });
    }
  }
};

/** A hostile peer running `script`, closed after the test. */
async function hostile(script: HostileScript) {
  const p = await startHostilePeer(script);
  fx.onClose(() => p.close());
  return p;
}

async function download(peers: string[], extra: string[]) {
  const torrent = path.join(fx.dir, 't.torrent');
  await writeFile(torrent, t.torrent);
  const out = path.join(fx.dir, 'a.bin');
  const r = await runCli([
    'download',
    torrent,
    '-o',
    out,
    '--no-dht',
    '--no-listen',
    ...extra,
    ...peers.flatMap((p) => ['--peer', p]),
  ]);
  expect(r.code, r.stderr).toBe(0);
  expect((await readFile(out)).equals(data)).toBe(true);
}

describe('a sender that waits for our acknowledgement', () => {
  it('gets one at once when the rest of what we asked is still due and nothing else is to be sent', async () => {
    // As a sender with Nagle's algorithm on holds the rest of a reply, less than a segment,
    // until the receiver acknowledges what came: this one holds the torrent's last block until
    // tdl sends anything. Without a keep-alive from tdl then, the only one would come after
    // KEEPALIVE_INTERVAL_MS, long past --timeout.
    const last = { index: pieceCount - 1, begin: PIECE - 16384 };
    let heldUntil = -1;
    let keepAlives = 0;
    const p = await hostile(async (c) => {
      await c.becomeReadySeeder(t.infoHash, pieceCount);
      let held = false;
      for (;;) {
        const m = await c.nextMessage(60_000);
        if (m.type === 'request') {
          const start = m.index * PIECE + m.begin;
          const block = data.subarray(start, start + m.length);
          if (m.index === last.index && m.begin === last.begin) held = true;
          else await c.send({ type: 'piece', index: m.index, begin: m.begin, block });
        } else if (m.type === 'keep-alive') {
          keepAlives++;
          if (!held) continue;
          held = false;
          heldUntil = Date.now();
          const start = last.index * PIECE + last.begin;
          await c.send({ type: 'piece', ...last, block: data.subarray(start, start + 16384) });
        }
      }
    });
    await download([p.hostPort], ['--timeout', '15']);
    expect(heldUntil).toBeGreaterThan(0);
    // Only while the last few blocks are due: not one per block.
    expect(keepAlives).toBeLessThanOrEqual(8);
  }, 60_000);
});

describe('peers that look alive but never send a block', () => {
  it('two that only send keep-alives, beside a good seeder: the download finishes', async () => {
    const good = await fx.seeder(t, PIECE, { rateLimit: 256 * 1024 });
    const a = await hostile(keepAliveOnly);
    const b = await hostile(keepAliveOnly);
    await download([a.hostPort, b.hostPort, `127.0.0.1:${good.port}`], ['--timeout', '45']);
  }, 90_000);

  it('one that never answers the handshake is said dropped when the run ends (--json)', async () => {
    const good = await fx.seeder(t, PIECE);
    // Reads our handshake and says nothing: the attempt is still running at the end.
    const mute = await hostile(async (c) => {
      await c.readHandshake();
      await c.sleep(120_000);
    });
    const torrent = path.join(fx.dir, 'mute.torrent');
    await writeFile(torrent, t.torrent);
    const out = path.join(fx.dir, 'mute.bin');
    const r = await runCli([
      ...['download', torrent, '-o', out, '--no-dht', '--no-listen', '--json'],
      ...['--peer', mute.hostPort, '--peer', `127.0.0.1:${good.port}`],
    ]);
    expect(r.code, r.stderr).toBe(0);
    const mutes = r.events.filter((e) => e['event'] === 'peer' && e['address'] === mute.hostPort);
    expect(mutes.map((e) => e['status'])).toEqual(['connecting', 'dropped']);
    expect(mutes[1]!['reason']).toBe('run ended');
    // Before the run's last events.
    expect(r.events.indexOf(mutes[1]!)).toBeLessThan(
      r.events.findIndex((e) => e['event'] === 'done'),
    );
  }, 60_000);

  it('one that rejects every request is not asked again and again', async () => {
    const good = await fx.seeder(t, PIECE, { rateLimit: 256 * 1024 });
    const rj = await hostile(rejecter);
    await download([rj.hostPort, `127.0.0.1:${good.port}`], ['--timeout', '45']);
    const requests = rj.conns.reduce(
      (n, c) => n + c.received.filter((m) => m.type === 'request').length,
      0,
    );
    // Each of its 24 blocks at most once or twice, not once per reject.
    expect(requests).toBeLessThan(200);
  }, 90_000);

  it('--max-peers 1: one that rejects a request gives the only slot up', async () => {
    const good = await fx.seeder(t, PIECE);
    const rj = await hostile(rejecter);
    await download(
      [rj.hostPort, `127.0.0.1:${good.port}`],
      ['--max-peers', '1', '--timeout', '45'],
    );
  }, 90_000);
});
