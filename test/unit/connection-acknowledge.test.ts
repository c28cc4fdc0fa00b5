/**
 * `PeerConnection.acknowledge` sends a keep-alive for the TCP acknowledgement it carries, at most
 * MAX_ACKS_PER_SECOND a second: a peer that counts control messages (tdl drops one past
 * MAX_CONTROL_MESSAGES in CONTROL_WINDOW_MS) sees a small share of its limit.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CONTROL_WINDOW_MS,
  MAX_ACKS_PER_SECOND,
  MAX_CONTROL_MESSAGES,
  PeerConnection,
} from '../../src/peer/connection.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { encodeHandshake, ourReserved } from '../../src/wire/handshake.js';

const infoHash = Buffer.alloc(20, 7);
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

describe('PeerConnection.acknowledge', () => {
  it('sends a keep-alive each time, up to MAX_ACKS_PER_SECOND in a second', async () => {
    const got: Buffer[] = [];
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.on('data', (d) => got.push(d));
      s.write(encodeHandshake(infoHash, Buffer.alloc(20, 2), ourReserved()));
      closers.push(() => s.destroy());
    });
    closers.push(() => server.close());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const conn = new PeerConnection({
      host: '127.0.0.1',
      port: (server.address() as net.AddressInfo).port,
      infoHash,
      peerId: Buffer.alloc(20, 1),
      pieceCount: 8,
    });
    closers.push(() => conn.close('test over'));
    await conn.connect();
    conn.start(new Bitfield(8));
    const before = () => Buffer.concat(got).length;
    await new Promise((r) => setTimeout(r, 100));
    const start = before();
    const t = 5_000_000; // a fixed second: the cap is per second of the clock given
    let sent = 0;
    for (let i = 0; i < MAX_ACKS_PER_SECOND + 20; i++) if (conn.acknowledge(t + i)) sent++;
    expect(sent).toBe(MAX_ACKS_PER_SECOND);
    // The next second has its own allowance.
    expect(conn.acknowledge(t + 1000)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    // Keep-alives only: four zero bytes each.
    const bytes = Buffer.concat(got).subarray(start);
    expect(bytes.length).toBe(4 * (MAX_ACKS_PER_SECOND + 1));
    expect(bytes.every((b) => b === 0)).toBe(true);
    // Well within what a tdl peer takes from one connection.
    expect(MAX_ACKS_PER_SECOND * (CONTROL_WINDOW_MS / 1000)).toBeLessThan(
      MAX_CONTROL_MESSAGES / 10,
    );
  });
});
