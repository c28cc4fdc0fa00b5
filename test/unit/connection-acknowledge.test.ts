/**
 * `PeerConnection.acknowledge` sends a keep-alive for the TCP acknowledgement it carries, at most
 * MAX_ACKS_PER_SECOND a second: a peer that counts control messages (tdl drops one past
 * MAX_CONTROL_MESSAGES in CONTROL_WINDOW_MS) sees a small share of its limit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  CONTROL_WINDOW_MS,
  MAX_ACKS_PER_SECOND,
  MAX_CONTROL_MESSAGES,
} from '../../src/peer/connection.js';
import { openConnection } from '../helpers/open-connection.js';
import { until } from '../helpers/tdl-process.js';

const infoHash = Buffer.alloc(20, 7);
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

describe('PeerConnection.acknowledge', () => {
  it('sends a keep-alive each time, up to MAX_ACKS_PER_SECOND in a second', async () => {
    const { conn, got } = await openConnection({
      infoHash,
      reads: true,
      pieceCount: 8,
      onClose: (c) => closers.push(c),
    });
    // What start() sent (a bitfield, the extension handshake) is in before the count begins.
    await until(() => got().length > 0, 5_000, 'the first messages');
    await new Promise((r) => setTimeout(r, 100));
    const start = got().length;
    const t = 5_000_000; // a fixed second: the cap is per second of the clock given
    let sent = 0;
    for (let i = 0; i < MAX_ACKS_PER_SECOND + 20; i++) if (conn.acknowledge(t + i)) sent++;
    expect(sent).toBe(MAX_ACKS_PER_SECOND);
    // The next second has its own allowance.
    expect(conn.acknowledge(t + 1000)).toBe(true);
    const want = 4 * (MAX_ACKS_PER_SECOND + 1);
    await until(() => got().length - start >= want, 5_000, 'the keep-alives');
    await new Promise((r) => setTimeout(r, 50));
    // Keep-alives only: four zero bytes each, and no more of them.
    const bytes = got().subarray(start);
    expect(bytes.length).toBe(want);
    expect(bytes.every((b) => b === 0)).toBe(true);
    // Well within what a tdl peer takes from one connection.
    expect(MAX_ACKS_PER_SECOND * (CONTROL_WINDOW_MS / 1000)).toBeLessThan(
      MAX_CONTROL_MESSAGES / 10,
    );
  });
});
