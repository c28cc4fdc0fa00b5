/**
 * What a connection holds for a peer that does not read is bounded: over MAX_REFUSE_QUEUED
 * unsent bytes a refusal closes the connection instead of being queued, and over
 * MAX_WRITE_QUEUED anything does; an honest peer's backlog of blocks is far below both. The
 * messages of one tick go to the socket in one write, in order.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_REFUSE_QUEUED, MAX_WRITE_QUEUED, PeerConnection } from '../../src/peer/connection.js';
import { openConnection } from '../helpers/open-connection.js';
import { HIGH_WATER, MAX_PENDING_BYTES, MAX_QUEUE } from '../../src/swarm/upload.js';
import { PeerExtensions } from '../../src/swarm/extensions.js';
import {
  LOCAL_EXTENSION_IDS,
  UT_METADATA,
  encodeExtendedHandshake,
} from '../../src/wire/extension.js';
import { HANDSHAKE_LENGTH } from '../../src/wire/handshake.js';
import { encodeUtMetadata } from '../../src/wire/ut-metadata.js';
import { BLOCK_SIZE, REQUEST_MESSAGE_BYTES } from '../../src/wire/messages.js';

const infoHash = Buffer.alloc(20, 7);
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

async function connection(reads: boolean): Promise<{ conn: PeerConnection; got: () => Buffer }> {
  const opened = await openConnection({ infoHash, reads, onClose: (c) => closers.push(c) });
  expect(opened.conn.fast).toBe(true);
  return opened;
}

describe('send limits', () => {
  it("sit above an honest peer's backlog: its blocks and a choke's rejects", () => {
    // Blocks in the socket and being read stay under MAX_PENDING_BYTES (plus a block, and a
    // 13-byte header each); a choke rejects the queue and the blocks being read.
    const blocks = MAX_PENDING_BYTES + BLOCK_SIZE;
    const headers = (blocks / BLOCK_SIZE) * 13;
    const rejects = (MAX_QUEUE + MAX_PENDING_BYTES / BLOCK_SIZE) * REQUEST_MESSAGE_BYTES;
    expect(HIGH_WATER).toBeLessThan(MAX_PENDING_BYTES);
    expect(blocks + headers + rejects).toBeLessThan(MAX_REFUSE_QUEUED / 1.5);
    expect(MAX_REFUSE_QUEUED).toBeLessThan(MAX_WRITE_QUEUED);
  });

  it('a slow honest peer with a full backlog of blocks still gets its rejects', async () => {
    const { conn } = await connection(false);
    const block = Buffer.alloc(BLOCK_SIZE);
    for (let i = 0; i < MAX_PENDING_BYTES / BLOCK_SIZE; i++) conn.sendPiece(i % 64, 0, block);
    for (let i = 0; i < MAX_QUEUE; i++) conn.reject(i % 64, 0, BLOCK_SIZE);
    expect(conn.writeQueued).toBeGreaterThan(MAX_PENDING_BYTES);
    expect(conn.state).toBe('open');
  });

  it('refusals to a peer that does not read: closed past MAX_REFUSE_QUEUED', async () => {
    const { conn } = await connection(false);
    let sent = 0;
    for (; sent < (2 * MAX_REFUSE_QUEUED) / 17 && conn.state === 'open'; sent++) {
      conn.reject(sent % 64, 0, BLOCK_SIZE);
    }
    expect(conn.state).toBe('closed');
    expect(conn.closeReason).toMatch(/floods requests/);
    expect(sent * 17).toBeGreaterThan(MAX_REFUSE_QUEUED);
    expect(sent * 17).toBeLessThan(MAX_REFUSE_QUEUED + 1024 * 1024);
  });

  it('ut_metadata refusals to a peer that does not read: closed past MAX_REFUSE_QUEUED too', async () => {
    const { conn } = await connection(false);
    expect(conn.extended).toBe(true);
    // No metadata to serve: every request is refused.
    const ext = new PeerExtensions(conn, {
      info: null,
      privateTorrent: false,
      onPeers: () => {},
      isOwn: () => false,
    });
    ext.onMessage(0, encodeExtendedHandshake({ m: new Map([[UT_METADATA, 3]]) }));
    const request = encodeUtMetadata({ type: 'request', piece: 0 });
    let asked = 0;
    for (; asked < MAX_WRITE_QUEUED / 20 && conn.state === 'open'; asked++) {
      ext.onMessage(LOCAL_EXTENSION_IDS[UT_METADATA], request);
    }
    expect(conn.state).toBe('closed');
    expect(conn.closeReason).toMatch(/floods requests/);
    expect(conn.writeQueued).toBeLessThan(MAX_REFUSE_QUEUED + 1024 * 1024);
  });

  it('anything else to a peer that does not read: closed past MAX_WRITE_QUEUED', async () => {
    const { conn } = await connection(false);
    let sent = 0;
    for (; sent < (2 * MAX_WRITE_QUEUED) / 9 && conn.state === 'open'; sent++) conn.have(sent % 64);
    expect(conn.state).toBe('closed');
    expect(conn.closeReason).toMatch(/does not read what we send/);
    expect(sent * 9).toBeGreaterThan(MAX_WRITE_QUEUED);
    expect(sent * 9).toBeLessThan(MAX_WRITE_QUEUED + 1024 * 1024);
  });

  it('the messages of one tick arrive in order, around the blocks', async () => {
    const { conn, got } = await connection(true);
    conn.have(1);
    conn.reject(2, 0, BLOCK_SIZE);
    conn.sendPiece(3, 0, Buffer.alloc(16, 3));
    conn.have(4);
    const want = HANDSHAKE_LENGTH + 5 + 9 + 17 + (13 + 16) + 9;
    const end = Date.now() + 10_000;
    while (got().length < want && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    const b = got();
    expect(b.length).toBe(want);
    let at = HANDSHAKE_LENGTH + 5; // our handshake and have-none
    expect([...b.subarray(at, at + 9)]).toEqual([0, 0, 0, 5, 4, 0, 0, 0, 1]);
    at += 9;
    expect(b[at + 4]).toBe(16);
    expect(b.readUInt32BE(at + 5)).toBe(2);
    at += 17;
    expect(b[at + 4]).toBe(7);
    expect(b.readUInt32BE(at + 5)).toBe(3);
    at += 13 + 16;
    expect([...b.subarray(at)]).toEqual([0, 0, 0, 5, 4, 0, 0, 0, 4]);
  });
});
