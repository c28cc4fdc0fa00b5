/**
 * A magnet download keeps the metadata phase's connections and announce session (docs/DESIGN.md,
 * "Magnet hand-over"), in process against fake seeders that serve the metadata (BEP 9) and a
 * fake HTTP tracker that records every announce:
 * - one TCP connection per seeder, one `started` and no `stopped` before `completed`, one peer id
 *   and one (real, non-zero) port for the whole run;
 * - a peer that connects to tdl while the metadata is fetched is kept for the data;
 * - what a seeder sent while the metadata was fetched (its pieces as `have`s, an unchoke it never
 *   repeats) is not lost;
 * - `--max-peers 1` admits one of the kept connections and downloads from it;
 * - a run that stopped keeps the metadata, and the next run resumes from it without the swarm's.
 */
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';
import { freePort } from '../helpers/ports.js';

const fx = useFixture();
const PIECE = 32 * 1024;

function torrent(seed: string): { t: MadeTorrent; info: Buffer } {
  const data = randomBytesSeeded(24 * PIECE + 1234, seed);
  const t = makeTorrent({ name: 'm.bin', pieceLength: PIECE, files: { data } });
  return { t, info: parseTorrent(t.torrent).info };
}

function magnet(t: MadeTorrent, o: { tracker?: string; peers?: number[] } = {}): string {
  let m = `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}`;
  if (o.tracker) m += `&tr=${encodeURIComponent(o.tracker)}`;
  for (const p of o.peers ?? []) m += `&x.pe=127.0.0.1:${p}`;
  return m;
}

describe('magnet links: the download takes over the metadata phase', () => {
  it('one connection to the seeder, one started and no stopped before completed', async () => {
    const { t, info } = torrent('handoff-one');
    const s = await fx.seeder(t, PIECE, { metadata: info });
    const tracker = await fx.tracker([s]);
    const out = path.join(fx.dir, 'out.bin');
    const r = await runCli([
      'download',
      magnet(t, { tracker: tracker.url }),
      '-o',
      out,
      '--json',
      '--no-dht',
      '--port',
      '0',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(t.data)).toBe(true);
    expect(s.metadataServed).toBeGreaterThan(0);
    expect(s.connections).toBe(1);
    const events = tracker.announces.map((a) => a.event ?? '');
    expect(events.filter((e) => e === 'started')).toEqual(['started']);
    expect(events[0]).toBe('started');
    const completed = events.indexOf('completed');
    expect(completed).toBeGreaterThan(0);
    expect(events.slice(0, completed)).not.toContain('stopped');
    // One session: the same peer id and the port really listened on, from the first announce.
    const started = r.events.find((e) => e.event === 'started');
    expect(started?.port).toBeGreaterThan(0);
    for (const a of tracker.announces) {
      expect(a.peerId.equals(tracker.announces[0]!.peerId)).toBe(true);
      expect(a.port).toBe(started?.port);
    }
    const peers = r.events.filter((e) => e.event === 'peer' && e.status === 'connecting');
    expect(peers).toEqual([]);
    // The metadata phase reports nothing once its `done` is out.
    const states = r.events.filter((e) => e.event === 'metadata').map((e) => e.state);
    expect(states.at(-1)).toBe('done');
    expect(states.filter((x) => x === 'done')).toHaveLength(1);
  });

  it('a private torrent drops the peers the metadata phase learnt by PEX', async () => {
    const data = randomBytesSeeded(8 * PIECE, 'handoff-private');
    const t = makeTorrent({
      name: 'p.bin',
      pieceLength: PIECE,
      files: { data },
      extraInfo: { private: 1 },
    });
    const info = parseTorrent(t.torrent).info;
    // Told only by PEX, before tdl knows the torrent is private.
    const told = await fx.seeder(t, PIECE, { metadata: info });
    const s = await fx.seeder(t, PIECE, { metadata: info, pex: [told.address] });
    const out = path.join(fx.dir, 'p.bin');
    const r = await runCli([
      'download',
      magnet(t, { peers: [s.port] }),
      '-o',
      out,
      '--no-dht',
      '--no-listen',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(told.served).toBe(0);
    expect(s.served).toBe(data.length);
    const fromPex = r.events.filter(
      (e) => e.event === 'peer' && e.source === 'pex' && e.status === 'connected',
    );
    expect(fromPex).toEqual([]);
  });

  it('PEX naming tdl itself during the metadata phase: tdl never dials itself', async () => {
    const { t, info } = torrent('handoff-self');
    const port = await freePort();
    const s = await fx.seeder(t, PIECE, { metadata: info, pex: [{ host: '127.0.0.1', port }] });
    const out = path.join(fx.dir, 'self.bin');
    const r = await runCli([
      'download',
      magnet(t, { peers: [s.port] }),
      '-o',
      out,
      '--no-dht',
      '--port',
      String(port),
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const self = r.events.filter((e) => e.event === 'peer' && e.address === `127.0.0.1:${port}`);
    expect(self).toEqual([]);
  });

  it('a peer that connects to tdl during the metadata phase serves the metadata and then the data', async () => {
    const { t, info } = torrent('handoff-incoming');
    const s = await fx.seeder(t, PIECE, { metadata: info });
    const port = await freePort();
    const out = path.join(fx.dir, 'out.bin');
    // The only address the magnet names answers nothing: the seeder comes to us.
    const run = runCli([
      'download',
      `${magnet(t)}&x.pe=127.0.0.1:1`,
      '-o',
      out,
      '--json',
      '--no-dht',
      '--port',
      String(port),
      '--timeout',
      '30',
    ]);
    for (let i = 0; ; i++) {
      try {
        await s.dial(port);
        break;
      } catch (e) {
        if (i > 300) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(t.data)).toBe(true);
    expect(s.metadataServed).toBeGreaterThan(0);
    expect(s.dialled).toBe(1);
    expect(s.connections).toBe(0);
    expect(s.served).toBe(t.data.length);
    const incoming = r.events.filter((e) => e.event === 'peer' && e.source === 'incoming');
    expect(incoming.map((e) => e.status)).toContain('connected');
  });

  it('keeps what a seeder sent during the metadata phase: its haves and an unchoke it never repeats', async () => {
    const { t, info } = torrent('handoff-early');
    const s = await fx.seeder(t, PIECE, {
      metadata: info,
      haveMessages: true,
      unchokeAtOnce: true,
    });
    const out = path.join(fx.dir, 'out.bin');
    const r = await runCli([
      'download',
      magnet(t, { peers: [s.port] }),
      '-o',
      out,
      '--no-dht',
      '--no-listen',
      // Were the unchoke lost, the seeder would never send another: fail fast, not hang.
      '--timeout',
      '20',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(t.data)).toBe(true);
    expect(s.connections).toBe(1);
  });

  it('tells a seeder it is interested as soon as the metadata is valid, before the download adopts the connection', async () => {
    const { t, info } = torrent('handoff-interest');
    const s = await fx.seeder(t, PIECE, { metadata: info });
    const out = path.join(fx.dir, 'out.bin');
    const r = await runCli([
      'download',
      magnet(t, { peers: [s.port] }),
      '-o',
      out,
      '--no-dht',
      '--no-listen',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(t.data)).toBe(true);
    expect(s.connections).toBe(1);
    // Our extension handshakes: the metadata phase's, then the download's (sent on adoption,
    // once its output is set up). `interested` goes out between them, once, not after.
    const handshakes = s.received.flatMap((m, i) => (m === 'extended:0' ? [i] : []));
    expect(handshakes).toHaveLength(2);
    const interested = s.received.indexOf('interested');
    expect(interested).toBeGreaterThan(handshakes[0]!);
    expect(interested).toBeLessThan(handshakes[1]!);
    expect(s.received.filter((m) => m === 'interested')).toHaveLength(1);
    expect(s.received.indexOf('request')).toBeGreaterThan(handshakes[1]!);
  });

  it('--max-peers 1 downloads from one of the kept connections, dialling no one again', async () => {
    const { t, info } = torrent('handoff-single');
    const a = await fx.seeder(t, PIECE, { metadata: info });
    const b = await fx.seeder(t, PIECE, { metadata: info });
    const out = path.join(fx.dir, 'out.bin');
    const r = await runCli([
      'download',
      magnet(t, { peers: [a.port, b.port] }),
      '-o',
      out,
      '--json',
      '--no-dht',
      '--no-listen',
      '--max-peers',
      '1',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(t.data)).toBe(true);
    // One seeder served it all; neither was dialled twice.
    expect([a.served, b.served].sort((x, y) => x - y)).toEqual([0, t.data.length]);
    expect(a.connections + b.connections).toBeLessThanOrEqual(2);
    expect(a.connections).toBeLessThanOrEqual(1);
    expect(b.connections).toBeLessThanOrEqual(1);
  });

  it('a run that stopped keeps the metadata; the next run resumes from it', async () => {
    const { t, info } = torrent('handoff-resume');
    // Half of the pieces, then nothing: the first run gives up (exit 5), keeping what it has.
    const half = await fx.seeder(t, PIECE, { metadata: info, pieces: (i) => i < 12 });
    const out = path.join(fx.dir, 'out.bin');
    const args = ['-o', out, '--json', '--no-dht', '--no-listen'];
    const first = await runCli([
      'download',
      magnet(t, { peers: [half.port] }),
      ...args,
      '--timeout',
      '3',
    ]);
    expect(first.code, first.stderr).toBe(5);
    expect(existsSync(`${out}.tdl-torrent`)).toBe(true);
    await half.close();
    // No peer serves the metadata now: it must come from the kept copy. The link's tracker, new
    // this run, is used with it, and so is its own peer (`x.pe`), named as the link's.
    const full = await fx.seeder(t, PIECE);
    const linked = await fx.seeder(t, PIECE);
    const tracker = await fx.tracker([full]);
    const second = await runCli([
      'download',
      magnet(t, { tracker: tracker.url, peers: [linked.port] }),
      ...args,
    ]);
    expect(second.code, second.stderr).toBe(0);
    const meta = second.events.find((e) => e.event === 'metadata');
    expect(meta?.state).toBe('kept');
    expect(tracker.announces.length).toBeGreaterThan(0);
    const dialled = second.events.filter(
      (e) =>
        e.event === 'peer' && e.status === 'connecting' && e.address === `127.0.0.1:${linked.port}`,
    );
    expect(dialled.length).toBeGreaterThan(0);
    expect(dialled.every((e) => e.source === 'magnet')).toBe(true);
    expect((await readFile(out)).equals(t.data)).toBe(true);
    expect(full.served + linked.served).toBeLessThan(t.data.length);
    expect(existsSync(`${out}.tdl-torrent`)).toBe(false);
  });

  it('--save-torrent onto where the metadata puts the data is refused once it is known', async () => {
    const { t, info } = torrent('handoff-save-onto');
    const s = await fx.seeder(t, PIECE, { metadata: info });
    const into = path.join(fx.dir, 'into');
    await mkdir(into);
    for (const save of [path.join(into, 'm.bin'), path.join(into, 'm.bin.tdl-torrent')]) {
      const r = await runCli([
        'download',
        magnet(t, { peers: [s.port] }),
        '-o',
        into,
        '--no-dht',
        '--no-listen',
        '--save-torrent',
        save,
      ]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toBe(
        `tdl: --save-torrent ${save}: the download (-o ${into}) writes there; name another file\n`,
      );
    }
    expect(await readdir(into)).toEqual([]);
    expect(s.served).toBe(0);
  });

  it('a run that got the metadata and no data leaves nothing: no metadata copy, no folder', async () => {
    const { t, info } = torrent('handoff-nothing');
    // The metadata, and not one piece.
    const s = await fx.seeder(t, PIECE, { metadata: info, pieces: () => false });
    const out = path.join(fx.dir, 'new', 'sub', 'm.bin');
    const r = await runCli([
      'download',
      magnet(t, { peers: [s.port] }),
      '-o',
      out,
      '--no-dht',
      '--no-listen',
      '--timeout',
      '2',
    ]);
    expect([4, 5]).toContain(r.code);
    expect(s.metadataServed).toBeGreaterThan(0);
    expect(await readdir(fx.dir)).not.toContain('new');
  });

  it('the kept metadata replaces a link in its place, never writes through it', async () => {
    const { t, info } = torrent('handoff-link');
    const s = await fx.seeder(t, PIECE, { metadata: info, pieces: (i) => i < 12 });
    const victim = path.join(fx.dir, 'victim.txt');
    await writeFile(victim, 'precious\n');
    const out = path.join(fx.dir, 'out.bin');
    await symlink(victim, `${out}.tdl-torrent`);
    const r = await runCli([
      'download',
      magnet(t, { peers: [s.port] }),
      '-o',
      out,
      '--no-dht',
      '--no-listen',
      '--timeout',
      '2',
    ]);
    expect(r.code, r.stderr).toBe(5);
    expect(await readFile(victim, 'utf8')).toBe('precious\n');
    // The metadata is kept, in a file of its own.
    expect((await lstat(`${out}.tdl-torrent`)).isFile()).toBe(true);
    expect(parseTorrent(await readFile(`${out}.tdl-torrent`)).infoHash).toEqual(t.infoHash);
  });

  it("a file of the user's where the metadata is kept is left alone: exit 6, nothing fetched", async () => {
    const { t, info } = torrent('handoff-mine');
    const s = await fx.seeder(t, PIECE, { metadata: info });
    const out = path.join(fx.dir, 'out.bin');
    const notes = Buffer.from('my own notes, not a torrent\n');
    await writeFile(`${out}.tdl-torrent`, notes);
    const args = ['download', magnet(t, { peers: [s.port] }), '-o', out, '--no-dht', '--no-listen'];
    const r = await runCli(args);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(
      `${out}.tdl-torrent is in the way of the kept metadata: it is not a torrent file (move it away)`,
    );
    expect((await readFile(`${out}.tdl-torrent`)).equals(notes)).toBe(true);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.tdl-resume`)).toBe(false);
    // An empty one holds nothing to lose (a copy cut short by a crash): replaced, then removed.
    await writeFile(`${out}.tdl-torrent`, '');
    const again = await runCli(args);
    expect(again.code, again.stderr).toBe(0);
    expect((await readFile(out)).equals(t.data)).toBe(true);
    expect(existsSync(`${out}.tdl-torrent`)).toBe(false);
  });
});
