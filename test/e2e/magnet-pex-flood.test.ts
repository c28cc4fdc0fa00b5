/**
 * A peer in a magnet link's metadata phase that sends its extension handshake again before each
 * PEX message: the once-a-minute limit on what a peer's PEX brings holds all the same (a new
 * handshake reset it, and 50 addresses came with each pair).
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { encode } from '../../src/metainfo/bencode.js';
import { Framer } from '../../src/wire/framer.js';
import { RESERVED_EXTENDED, encodeHandshake } from '../../src/wire/handshake.js';
import { encodeExtended } from '../../src/wire/messages.js';
import {
  UT_METADATA,
  UT_PEX,
  decodeExtendedHandshake,
  encodeExtendedHandshake,
  peerExtensionId,
} from '../../src/wire/extension.js';
import { encodePex } from '../../src/wire/ut-pex.js';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';

const fx = useFixture();

describe('PEX in the metadata phase', () => {
  it('a repeated extension handshake does not reset the once-a-minute limit', async () => {
    const info = Buffer.from(
      encode({ name: 'x', 'piece length': 16384, pieces: Buffer.alloc(20), length: 1 }),
    );
    const infoHash = createHash('sha1').update(info).digest();
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      const framer = new Framer({ maxLength: 1 << 20, expectHandshake: true });
      let handshaken = false;
      socket.on('data', (chunk: Buffer) => {
        framer.push(chunk);
        if (!handshaken) {
          if (!framer.nextHandshake()) return;
          handshaken = true;
          const reserved = Buffer.alloc(8);
          reserved[RESERVED_EXTENDED.byte]! |= RESERVED_EXTENDED.bit;
          socket.write(encodeHandshake(infoHash, Buffer.from('-PF0001-pexfloodpeer'), reserved));
        }
        for (let msg = framer.next(); msg; msg = framer.next()) {
          if (msg.type !== 'extended' || msg.extId !== 0) continue;
          const pexId = peerExtensionId(decodeExtendedHandshake(msg.payload), UT_PEX);
          if (pexId === undefined) continue;
          // Four rounds of a handshake, then 50 addresses no one listens on.
          const m = new Map([
            [UT_METADATA, 3],
            [UT_PEX, 4],
          ]);
          for (let round = 0; round < 4; round++) {
            socket.write(
              encodeExtended(0, encodeExtendedHandshake({ m, metadataSize: info.length })),
            );
            const added = Array.from({ length: 50 }, (_, i) => ({
              host: `127.0.${10 + round}.${i + 1}`,
              port: 9,
            }));
            socket.write(encodeExtended(pexId, encodePex({ added, addedFlags: [], dropped: [] })));
          }
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    fx.onClose(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    });
    const magnet = `magnet:?xt=urn:btih:${infoHash.toString('hex')}&x.pe=127.0.0.1:${port}`;
    const r = await runCli(['info', magnet, '--json', '--no-dht', '--timeout', '3']);
    expect(r.code, r.stderr).toBe(4);
    // The link's own peer and one message's 50 (201 when each handshake reset the limit).
    expect(r.stderr).toContain('no metadata within 3s (51 peer addresses');
  });
});
