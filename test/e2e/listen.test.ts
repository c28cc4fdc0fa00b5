/**
 * Listening, against the built CLI: `--port N` is bound and announced (and named on stderr when
 * seeding starts), a taken port is a usage error, `--bind` restricts the address, `--no-listen`
 * accepts nothing and announces port 0, a torrent with no tracker and no DHT is seeded to peers
 * that know the port, handshakes for another torrent or with our own peer id are closed at once,
 * incoming peers count against `--max-peers`, a peer that opens with message stream encryption
 * (as aria2c does) gets a plaintext stream, and an incoming peer's listening address (its
 * extension handshake's `p`) is not dialled again while it is connected.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FakeLeecher } from '../helpers/fake-leecher.js';
import type { FakeTracker } from '../helpers/fake-tracker.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, spawnTdl, until } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded, type MadeTorrent } from '../helpers/torrent.js';
import { encode } from '../../src/metainfo/bencode.js';
import { encodeHandshake, ourReserved } from '../../src/wire/handshake.js';
import { CRYPTO_PLAINTEXT, CRYPTO_RC4 } from '../../src/wire/mse.js';
import { Framer } from '../../src/wire/framer.js';
import { encodeMessage, type Message } from '../../src/wire/messages.js';
import { MseInitiator } from '../helpers/mse-initiator.js';
import { freePort } from '../helpers/ports.js';

const PIECE = 32768;
const data = randomBytesSeeded(256 * 1024, 'listen');

const fx = useFixture();

beforeAll(() => assertBuilt());

let seq = 0;
function peerId(): Buffer {
  return Buffer.from(`-LS0001-${String(++seq).padStart(12, '0')}`);
}

async function prepare(): Promise<{
  t: MadeTorrent;
  torrent: string;
  file: string;
  tr: FakeTracker;
}> {
  const { t, torrent, tr } = await fx.singleFile(data, PIECE);
  const out = path.join(fx.dir, 'out');
  await mkdir(out, { recursive: true });
  const file = path.join(out, 'data.bin');
  await writeFile(file, data);
  return { t, torrent, file, tr };
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** TCP sockets in LISTEN state held by a process (from /proc; Linux only). */
function listeningSockets(pid: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]!)) n++;
    }
  }
  return n;
}

/** A fake leecher speaking the fast and extension protocols, handshaken with tdl. */
async function connectExtended(
  port: number,
  infoHash: Buffer,
  host = '127.0.0.1',
): Promise<FakeLeecher> {
  const l = await FakeLeecher.connect({
    host,
    port,
    infoHash,
    peerId: peerId(),
    fast: true,
    extended: true,
  });
  fx.onClose(() => l.close());
  await l.waitHandshake();
  return l;
}

describe('listening', () => {
  it('--port N is bound, reported in started and announced to the tracker', async () => {
    const { t, torrent, file, tr } = await prepare();
    const port = await freePort();
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', String(port), '--json'],
      fx.onClose,
    );
    expect(await tdl.port()).toBe(port);
    await until(() => tr.announces.length > 0, 15_000, 'an announce');
    expect(tr.announces[0]!.port).toBe(port);
    expect(listeningSockets(tdl.child.pid!)).toBe(1);
    const l = await FakeLeecher.connect({ port, infoHash: t.infoHash, peerId: peerId() });
    fx.onClose(() => l.close());
    const hs = await l.waitHandshake();
    expect(hs.infoHash.equals(t.infoHash)).toBe(true);
  });

  it('without --json, seeding starts with one stderr line naming the port to reach', async () => {
    const { t, torrent, file } = await prepare();
    const tdl = spawnTdl(['seed', torrent, '-o', file, '--port', '0'], fx.onClose);
    await until(() => /on port \d+/.test(tdl.stderr()), 15_000, 'the seeding line');
    const m = /^tdl: seeding data\.bin on port (\d+) \(Ctrl-C to stop\)$/m.exec(tdl.stderr());
    expect(m, tdl.stderr()).not.toBeNull();
    const l = await FakeLeecher.connect({
      port: Number(m![1]),
      infoHash: t.infoHash,
      peerId: peerId(),
    });
    fx.onClose(() => l.close());
    await l.waitHandshake();

    const quiet = spawnTdl(['seed', torrent, '-o', file, '--no-listen'], fx.onClose);
    await until(() => quiet.stderr().includes('accepting no connection'), 15_000, 'the line');
    expect(quiet.stderr()).toMatch(/^tdl: seeding data\.bin accepting no connection \(Ctrl-C/m);
  });

  it('seeds a torrent with no tracker and no DHT to peers that know its port; refuses with --no-listen', async () => {
    const t = makeTorrent({ name: 'data.bin', pieceLength: PIECE, files: { data } });
    const torrent = await fx.writeTorrent(t, 'trackerless.torrent');
    const file = path.join(fx.dir, 'data.bin');
    await writeFile(file, data);
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', '0', '--no-dht', '--json'],
      fx.onClose,
    );
    const port = await tdl.port();
    const l = await FakeLeecher.connect({ port, infoHash: t.infoHash, peerId: peerId() });
    fx.onClose(() => l.close());
    await l.waitHandshake();

    const none = spawnTdl(['seed', torrent, '-o', file, '--no-dht', '--no-listen'], fx.onClose);
    const { code } = await none.exited;
    expect(code).toBe(4);
    expect(none.stderr()).toContain('no peer can reach this seed');
  });

  it('a taken --port is a usage error (exit 2) with a clear message', async () => {
    const { torrent, file } = await prepare();
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, r));
    fx.onClose(() => new Promise<void>((r) => busy.close(() => r())));
    const { port } = busy.address() as net.AddressInfo;
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', String(port), '--json'],
      fx.onClose,
    );
    const { code } = await tdl.exited;
    expect(code).toBe(2);
    expect(tdl.events.find((e) => e.event === 'error')?.['message']).toBe(
      `cannot listen on port ${port}: address already in use (EADDRINUSE)`,
    );
    // An IPv6 --bind is written as an address with a port is: in brackets.
    const v6 = spawnTdl(
      ['seed', torrent, '-o', file, '--port', String(port), '--bind', '::1', '--json'],
      fx.onClose,
    );
    expect((await v6.exited).code).toBe(2);
    expect(v6.events.find((e) => e.event === 'error')?.['message']).toBe(
      `cannot listen on [::1]:${port}: address already in use (EADDRINUSE)`,
    );
    // Given in brackets, as beside a port: the same address.
    const bracketed = await runCli([
      'seed',
      torrent,
      '-o',
      file,
      '--port',
      String(port),
      '--bind',
      '[::1]',
    ]);
    expect(bracketed.code).toBe(2);
    expect(bracketed.stderr).toContain(`cannot listen on [::1]:${port}`);
    const v4 = await runCli(['seed', torrent, '-o', file, '--bind', '[127.0.0.1]']);
    expect(v4.code).toBe(2);
    expect(v4.stderr).toContain('such as 192.168.1.20 or ::1), without a port');
    // Said before the data is hashed, not after.
    expect(tdl.events.filter((e) => e.event === 'checking')).toEqual([]);
  });

  it('a taken --port leaves nothing behind: no folder of the torrent, none above -o', async () => {
    const t = makeTorrent({
      name: 'album',
      pieceLength: PIECE,
      files: [
        { path: ['cd1', 'a.bin'], data: data.subarray(0, 100_000) },
        { path: ['b.bin'], data: data.subarray(100_000) },
      ],
    });
    const torrent = await fx.writeTorrent(t);
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    fx.onClose(() => new Promise<void>((r) => busy.close(() => r())));
    const { port } = busy.address() as net.AddressInfo;
    const before = readdirSync(fx.dir).sort();
    for (const out of [path.join(fx.dir, 'album'), path.join(fx.dir, 'new', 'deep', 'album')]) {
      const tdl = spawnTdl(
        ['download', torrent, '-o', out].concat([
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--peer',
          '127.0.0.1:9',
          '--no-dht',
        ]),
        fx.onClose,
      );
      const { code } = await tdl.exited;
      expect(code, tdl.stderr()).toBe(2);
      expect(tdl.stderr()).toContain(`cannot listen on 127.0.0.1:${port}`);
      // The folders made at open (album/, album/cd1/, new/deep/) are gone again.
      expect(readdirSync(fx.dir).sort()).toEqual(before);
    }
  });

  it('--bind 127.0.0.1 listens there only', async () => {
    const { t, torrent, file } = await prepare();
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', '0', '--bind', '127.0.0.1', '--json'],
      fx.onClose,
    );
    const port = await tdl.port();
    expect(await canConnect('127.0.0.2', port)).toBe(false);
    const l = await FakeLeecher.connect({ port, infoHash: t.infoHash, peerId: peerId() });
    fx.onClose(() => l.close());
    await l.waitHandshake();
  });

  it('--no-listen accepts nothing and announces port 0', async () => {
    const { torrent, file, tr } = await prepare();
    const tdl = spawnTdl(['seed', torrent, '-o', file, '--no-listen', '--json'], fx.onClose);
    expect(await tdl.port()).toBe(0);
    await until(() => tr.announces.length > 0, 15_000, 'an announce');
    expect(tr.announces[0]!.port).toBe(0);
    expect(listeningSockets(tdl.child.pid!)).toBe(0);
  });

  it('an incoming handshake for another info hash, or with our own peer id, is closed at once', async () => {
    const { t, torrent, file } = await prepare();
    const tdl = spawnTdl(['seed', torrent, '-o', file, '--port', '0', '--json'], fx.onClose);
    const port = await tdl.port();
    const other = Buffer.from(t.infoHash);
    other[19]! ^= 1;
    const a = await FakeLeecher.connect({ port, infoHash: other, peerId: peerId() });
    fx.onClose(() => a.close());
    await a.waitClosed(5_000);
    expect(a.frames.length).toBe(0);
    // tdl's own peer id, learnt from an honest connection.
    const honest = await FakeLeecher.connect({ port, infoHash: t.infoHash, peerId: peerId() });
    fx.onClose(() => honest.close());
    const own = (await honest.waitHandshake()).peerId;
    const b = await FakeLeecher.connect({
      port,
      infoHash: t.infoHash,
      peerId: own,
      localAddress: '127.0.0.2',
    });
    fx.onClose(() => b.close());
    await b.waitClosed(5_000);
    expect(b.frames.filter((f) => f.id !== null && f.id !== 5 && f.id !== 14).length).toBe(0);
    expect(honest.isClosed).toBe(false);
  });

  it('a peer opening with MSE gets plaintext: our handshake, then what we have', async () => {
    const { t, torrent, file } = await prepare();
    const tdl = spawnTdl(['seed', torrent, '-o', file, '--port', '0', '--json'], fx.onClose);
    const port = await tdl.port();
    const talk = async (infoHash: Buffer) => {
      const hs = encodeHandshake(infoHash, peerId(), ourReserved());
      const a = new MseInitiator(infoHash, { ia: hs, padA: Buffer.alloc(40, 1) });
      const s = net.connect({ host: '127.0.0.1', port });
      fx.onClose(async () => {
        s.destroy();
      });
      let select: number | null = null;
      let plain: Buffer = Buffer.alloc(0);
      let closed = false;
      s.on('error', () => {});
      s.on('close', () => (closed = true));
      s.on('data', (chunk: Buffer) => {
        if (select !== null) {
          plain = Buffer.concat([plain, chunk]);
          return;
        }
        const r = a.push(chunk);
        if (r.send.length > 0) s.write(r.send);
        if (r.select !== null) {
          select = r.select;
          plain = r.rest;
        }
      });
      s.write(a.start());
      await until(() => closed || plain.length >= 68 + 5, 10_000, 'the handshake or a close');
      return { select, plain, closed };
    };
    const ok = await talk(t.infoHash);
    expect(ok.select).toBe(CRYPTO_PLAINTEXT);
    expect(ok.plain.subarray(0, 20).toString('latin1')).toBe('\x13BitTorrent protocol');
    expect(ok.plain.subarray(28, 48)).toEqual(t.infoHash);
    // have all (14) or a bitfield (5) follows the handshake.
    expect([5, 14]).toContain(ok.plain[68 + 4]);
    const other = Buffer.from(t.infoHash);
    other[0]! ^= 1;
    const bad = await talk(other);
    expect(bad.closed).toBe(true);
    expect(bad.select).toBeNull();
  });

  it('a peer that offers RC4 alone (as transmission does by default) is served over RC4', async () => {
    const { t, torrent, file } = await prepare();
    const tdl = spawnTdl(['seed', torrent, '-o', file, '--port', '0', '--json'], fx.onClose);
    const port = await tdl.port();
    const hs = encodeHandshake(t.infoHash, peerId(), ourReserved());
    const a = new MseInitiator(t.infoHash, { provide: CRYPTO_RC4, ia: hs });
    const s = net.connect({ host: '127.0.0.1', port });
    fx.onClose(async () => {
      s.destroy();
    });
    s.on('error', () => {});
    let select: number | null = null;
    let plain: Buffer = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      if (select !== null) {
        plain = Buffer.concat([plain, a.streams().decrypt.update(chunk)]);
        return;
      }
      const r = a.push(chunk);
      if (r.send.length > 0) s.write(r.send);
      if (r.select !== null) {
        select = r.select;
        plain = a.streams().decrypt.update(r.rest);
      }
    });
    s.write(a.start());
    await until(() => plain.length >= 68 + 5, 10_000, 'the handshake');
    expect(select).toBe(CRYPTO_RC4);
    expect(plain.subarray(0, 20).toString('latin1')).toBe('\x13BitTorrent protocol');
    expect(plain.subarray(28, 48)).toEqual(t.infoHash);
    // Interested, unchoked, one block: every byte both ways through RC4.
    const send = (m: Message) => s.write(a.streams().encrypt.update(encodeMessage(m)));
    send({ type: 'interested' });
    const framer = new Framer({ maxLength: 1 << 20, expectHandshake: false });
    framer.push(plain.subarray(68));
    plain = Buffer.alloc(0);
    const got: Message[] = [];
    const read = () => {
      framer.push(plain);
      plain = Buffer.alloc(0);
      for (let m = framer.next(); m; m = framer.next()) {
        got.push(m.type === 'piece' ? { ...m, block: Buffer.from(m.block) } : m);
      }
    };
    await until(() => (read(), got.some((m) => m.type === 'unchoke')), 10_000, 'an unchoke');
    send({ type: 'request', index: 1, begin: 16384, length: 16384 });
    await until(() => (read(), got.some((m) => m.type === 'piece')), 10_000, 'the block');
    const piece = got.find((m) => m.type === 'piece') as Extract<Message, { type: 'piece' }>;
    expect(piece.block.equals(data.subarray(PIECE + 16384, PIECE + 32768))).toBe(true);
  });

  it('a peer that sends its extension handshake before have-none is kept (as libtorrent does)', async () => {
    const { t, torrent, file } = await prepare();
    const tdl = spawnTdl(['seed', torrent, '-o', file, '--port', '0', '--json'], fx.onClose);
    const port = await tdl.port();
    const l = await connectExtended(port, t.infoHash);
    l.extendedMessage(0, Buffer.from('d1:md11:ut_metadatai1eee'));
    l.haveNone();
    l.interested();
    await l.waitFor((f) => f.id === 1, { timeoutMs: 10_000 });
    expect(l.isClosed).toBe(false);
  });

  it('incoming peers count against --max-peers', async () => {
    const { t, torrent, file } = await prepare();
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', '0', '--json', '--max-peers', '2'],
      fx.onClose,
    );
    const port = await tdl.port();
    const ls: FakeLeecher[] = [];
    for (let i = 0; i < 3; i++) {
      const l = await FakeLeecher.connect({
        port,
        infoHash: t.infoHash,
        peerId: peerId(),
        localAddress: `127.0.4.${10 + i}`,
      });
      fx.onClose(() => l.close());
      ls.push(l);
      if (i < 2) {
        await l.waitHandshake();
        await tdl.waitEvent(
          'peer',
          10_000,
          (e) =>
            e['status'] === 'connected' && String(e['address']).startsWith(`127.0.4.${10 + i}:`),
        );
      }
    }
    await ls[2]!.waitClosed(10_000);
    expect(ls[0]!.isClosed).toBe(false);
    expect(ls[1]!.isClosed).toBe(false);
    // A place frees: the next one is taken.
    await ls[0]!.close();
    const again = await FakeLeecher.connect({
      port,
      infoHash: t.infoHash,
      peerId: peerId(),
      localAddress: '127.0.4.20',
    });
    fx.onClose(() => again.close());
    await again.waitHandshake();
    await until(
      () =>
        tdl.events.some(
          (e) =>
            e.event === 'peer' &&
            e['status'] === 'connected' &&
            String(e['address']).startsWith('127.0.4.20:'),
        ),
      10_000,
      'the next peer admitted',
    );
    expect(again.isClosed).toBe(false);
  });
});

/** A TCP server on 127.0.0.1 that accepts and holds connections, counting them. */
async function countingServer(): Promise<{ port: number; accepted: () => number }> {
  let n = 0;
  const sockets: net.Socket[] = [];
  const srv = net.createServer((s) => {
    n++;
    sockets.push(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  fx.onClose(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  );
  return { port: (srv.address() as net.AddressInfo).port, accepted: () => n };
}

describe('an incoming peer that says where it listens', () => {
  it('is not dialled again at that address when PEX names it', async () => {
    const { t, torrent } = await prepare();
    const out = path.join(fx.dir, 'empty');
    await mkdir(out, { recursive: true });
    const tdl = spawnTdl(
      ['download', torrent, '-o', out, '--port', '0', '--json', '--no-dht'],
      fx.onClose,
    );
    const port = await tdl.port();
    // Where the incoming peer listens (it must not be dialled), and another peer (it must be).
    const itself = await countingServer();
    const other = await countingServer();
    const l = await connectExtended(port, t.infoHash);
    l.sendExtendedHandshake({ m: { ut_pex: 1 }, p: itself.port });
    l.bitfield(Buffer.from([0xff]));
    const added = Buffer.alloc(12);
    added.writeUInt32BE(0x7f000001, 0);
    added.writeUInt16BE(itself.port, 4);
    added.writeUInt32BE(0x7f000001, 6);
    added.writeUInt16BE(other.port, 10);
    // tdl's ut_pex id is 2 (its extension handshake's `m`).
    l.extendedMessage(2, encode({ added, 'added.f': Buffer.alloc(2), dropped: Buffer.alloc(0) }));
    await until(() => other.accepted() > 0, 10_000, 'the other PEX peer dialled');
    // Both addresses came in one message and would be dialled together: give it a moment more.
    await new Promise((r) => setTimeout(r, 300));
    expect(itself.accepted()).toBe(0);
    expect(l.isClosed).toBe(false);
  });
});

describe('PEX naming tdl itself', () => {
  function compact(host: string, port: number): Buffer {
    const b = Buffer.alloc(6);
    host.split('.').forEach((o, i) => (b[i] = Number(o)));
    b.writeUInt16BE(port, 4);
    return b;
  }

  // Peers list us where they see us: on a LAN or loopback address other than 127.0.0.1 that
  // reaches our listener, or (libtorrent's PEX lists the receiving peer itself) at the public
  // address their `yourip` names. None of them is dialled.
  it.each([
    { name: 'another loopback address, listening on all', bind: null, self: '127.0.0.7' },
    { name: 'the --bind address', bind: '127.0.0.5', self: '127.0.0.5' },
    { name: 'the address a peer says it sees us at', bind: null, self: '203.0.113.9' },
  ])('at $name: never dialled', async ({ bind, self }) => {
    const { t, torrent } = await prepare();
    const out = path.join(fx.dir, 'empty');
    await mkdir(out, { recursive: true });
    const args = ['download', torrent, '-o', out, '--port', '0', '--json', '--no-dht'];
    const tdl = spawnTdl(bind ? [...args, '--bind', bind] : args, fx.onClose);
    const port = await tdl.port();
    const other = await countingServer();
    const l = await connectExtended(port, t.infoHash, bind ?? '127.0.0.1');
    const yourip = Buffer.from(self.split('.').map(Number));
    l.sendExtendedHandshake({ m: { ut_pex: 1 }, p: 1, yourip });
    l.bitfield(Buffer.from([0xff]));
    const added = Buffer.concat([compact(self, port), compact('127.0.0.1', other.port)]);
    // tdl's ut_pex id is 2 (its extension handshake's `m`).
    l.extendedMessage(2, encode({ added, 'added.f': Buffer.from([0x11, 0x10]), dropped: '' }));
    await until(() => other.accepted() > 0, 10_000, 'the other PEX peer dialled');
    // Both addresses came in one message and would be dialled together: give it a moment more.
    await new Promise((r) => setTimeout(r, 300));
    const dialled = tdl.events.filter((e) => e.event === 'peer' && e.address === `${self}:${port}`);
    expect(dialled).toEqual([]);
    expect(l.isClosed).toBe(false);
  });
});
