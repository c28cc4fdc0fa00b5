/**
 * `--encryption` end to end: a real `tdl seed` child process on one side, the CLI in process on
 * the other, or a fake seeder that speaks only the plain handshake. What a user checks: the
 * bytes on disk, the exit code, and the `encryption` of the `connected` events.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeHandshake } from '../../src/wire/handshake.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, until } from '../helpers/tdl-process.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

const PIECE = 32768;
const data = randomBytesSeeded(512 * 1024 + 777, 'encryption');

const fx = useFixture();

beforeAll(() => assertBuilt());

/** `tdl download` of the torrent from the peer at `port` only; its result and the file's bytes. */
async function fetchFrom(torrent: string, port: number, args: string[] = []) {
  const out = path.join(fx.dir, 'got.bin');
  const r = await runCli([
    'download',
    torrent,
    '-o',
    out,
    '--peer',
    `127.0.0.1:${port}`,
    '--no-dht',
    '--no-listen',
    '--json',
    '--timeout',
    '20',
    ...args,
  ]);
  const connected = r.events.filter((e) => e.event === 'peer' && e.status === 'connected');
  const bytes = r.code === 0 ? await readFile(out) : null;
  return { ...r, bytes, encryption: connected.map((e) => e.encryption) };
}

describe('--encryption', () => {
  const fromSeed: [title: string, seed: string[], download: string[], encryption: string][] = [
    // The seed selects RC4 from our offer of both.
    [
      'allow (the default): a seed that requires encryption hangs up on the plain handshake, and is dialled again with MSE',
      ['--encryption', 'require'],
      [],
      'rc4',
    ],
    [
      'require: RC4 both ways with a seed that would allow plaintext',
      [],
      ['--encryption', 'require'],
      'rc4',
    ],
    [
      'prefer: an MSE handshake, then a plain stream when the seed allows it',
      [],
      ['--encryption', 'prefer'],
      'handshake',
    ],
  ];
  for (const [title, seedArgs, args, encryption] of fromSeed) {
    it(title, async () => {
      const { torrent, port, tdl } = await fx.tdlSeed(data, PIECE, seedArgs);
      const r = await fetchFrom(torrent, port, args);
      expect(r.code).toBe(0);
      expect(r.bytes!.equals(data)).toBe(true);
      expect(r.encryption).toEqual([encryption]);
      // The seed tells the same of the connection it accepted.
      const accepted = () =>
        tdl.events.filter(
          (e) => e.event === 'peer' && e.status === 'connected' && e.source === 'incoming',
        );
      await until(() => accepted().length > 0, 10_000, "the seed's connected event");
      expect(accepted().map((e) => e.encryption)).toEqual([encryption]);
    });
  }

  it('prefer: a peer that knows no MSE is dialled again with the plain handshake', async () => {
    const { t, torrent } = await fx.singleFile(data, PIECE);
    const s = await fx.seeder(t, PIECE);
    const r = await fetchFrom(torrent, s.port, ['--encryption', 'prefer']);
    expect(r.code).toBe(0);
    expect(r.bytes!.equals(data)).toBe(true);
    expect(r.encryption).toEqual(['none']);
  });

  it('require: a peer that knows no MSE is not downloaded from (exit 4)', async () => {
    const { t, torrent } = await fx.singleFile(data, PIECE);
    const s = await fx.seeder(t, PIECE);
    const r = await fetchFrom(torrent, s.port, ['--encryption', 'require', '--timeout', '3']);
    expect(r.code).toBe(4);
    expect(r.encryption).toEqual([]);
    // Why: the peer turned the encrypted handshake down, and no plain one is tried (an attempt
    // still under way at the end says so instead).
    const dropped = r.events.filter(
      (e) => e.event === 'peer' && e.status === 'dropped' && e['reason'] !== 'run ended',
    );
    expect(dropped.length).toBeGreaterThan(0);
    for (const e of dropped) {
      expect(String(e['reason'])).toMatch(
        /in the encrypted handshake \(the peer may not take encryption; --encryption require tries no plain one\)$/,
      );
    }
    expect(String(r.events.at(-1)?.['message'])).toContain(
      '--encryption require tries no plain one',
    );
  });

  it('prefer: a peer that fails both handshakes is dropped naming each failure', async () => {
    const { torrent } = await fx.singleFile(data, PIECE);
    // Answers anything with bytes that are no handshake of either kind.
    const junk = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.once('data', () => sock.end(Buffer.alloc(200, 0x41)));
    });
    await new Promise<void>((resolve) => junk.listen(0, '127.0.0.1', resolve));
    fx.onClose(() => new Promise<void>((resolve) => junk.close(() => resolve())));
    const port = (junk.address() as net.AddressInfo).port;
    const r = await fetchFrom(torrent, port, ['--encryption', 'prefer', '--timeout', '3']);
    expect(r.code).toBe(4);
    const dropped = r.events.filter(
      (e) => e.event === 'peer' && e.status === 'dropped' && e['reason'] !== 'run ended',
    );
    expect(dropped.length).toBeGreaterThan(0);
    for (const e of dropped) {
      expect(String(e['reason'])).toMatch(/^encrypted handshake: .+; plain handshake: .+/);
    }
  });

  it('require: a seed closes an incoming plain handshake without a byte in answer', async () => {
    const { t, port } = await fx.tdlSeed(data, PIECE, ['--encryption', 'require']);
    const socket = net.connect({ host: '127.0.0.1', port });
    fx.onClose(async () => void socket.destroy());
    let answered = 0;
    socket.on('data', (d: Buffer) => (answered += d.length));
    socket.on('error', () => {});
    socket.write(encodeHandshake(t.infoHash, Buffer.from('-FL0001-plainplain12'), Buffer.alloc(8)));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(answered).toBe(0);
  });

  it('an unknown mode is a usage error (exit 2) naming the choices', async () => {
    const { torrent } = await fx.singleFile(data, PIECE);
    const r = await runCli(['download', torrent, '--encryption', 'maybe', '--no-dht']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Allowed choices are allow, prefer, require');
  });

  it('a magnet link from a seed that requires encryption: the metadata phase dials again with MSE too', async () => {
    const { t, port } = await fx.tdlSeed(data, PIECE, ['--encryption', 'require']);
    const out = path.join(fx.dir, 'from-magnet.bin');
    const magnet = `magnet:?xt=urn:btih:${t.infoHash.toString('hex')}&x.pe=127.0.0.1:${port}`;
    const r = await runCli(['download', magnet, '-o', out, '--no-dht', '--no-listen', '--json']);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  });
});
