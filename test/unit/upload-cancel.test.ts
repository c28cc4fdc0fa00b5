/**
 * `cancel` in the upload service: a request still queued is taken out and, with the fast
 * extension, answered with a `reject` (BEP 6: every request gets exactly one answer); one whose
 * read is under way still gets its block.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { PeerConnection } from '../../src/peer/connection.js';
import { Layout } from '../../src/storage/layout.js';
import { UploadService, type BlockSource } from '../../src/swarm/upload.js';
import { Bitfield } from '../../src/wire/bitfield.js';

const BLOCK = 16384;
const PIECE = 65536;

interface Answer {
  index: number;
  begin: number;
}

/** The parts of a connection the upload service uses; a reject goes out only with BEP 6. */
class FakeConn extends EventEmitter {
  address = '127.0.0.1:1';
  state = 'open';
  amChoking = false;
  writeQueued = 0;
  sent: Answer[] = [];
  rejected: Answer[] = [];
  constructor(readonly fast: boolean) {
    super();
  }
  sendPiece(index: number, begin: number): void {
    this.sent.push({ index, begin });
  }
  reject(index: number, begin: number): void {
    if (this.fast) this.rejected.push({ index, begin });
  }
  close(): void {
    this.state = 'closed';
  }
}

/** Reads that finish when the test says so. */
class SlowSource implements BlockSource {
  private pending: (() => void)[] = [];
  readBlock(index: number, begin: number, length: number): Promise<Buffer> {
    return new Promise((resolve) => this.pending.push(() => resolve(Buffer.alloc(length))));
  }
  async finishAll(): Promise<void> {
    for (const f of this.pending.splice(0)) f();
    await new Promise((r) => setImmediate(r));
  }
}

function setup(fast = true) {
  const layout = new Layout([{ offset: 0, length: PIECE * 8 }], PIECE, PIECE * 8);
  const have = new Bitfield(layout.pieceCount);
  have.setAll();
  const source = new SlowSource();
  const upload = new UploadService(layout, have, source);
  const c = new FakeConn(fast);
  upload.add(c as unknown as PeerConnection);
  return { upload, source, c };
}

describe('UploadService: cancel', () => {
  it('a queued request cancelled is rejected, and never served', async () => {
    const { source, c } = setup();
    // A full socket: the requests stay queued.
    c.writeQueued = 10 * 1024 * 1024;
    for (let b = 0; b < PIECE; b += BLOCK) c.emit('request', 1, b, BLOCK);
    c.emit('cancel', 1, 2 * BLOCK, BLOCK);
    expect(c.rejected).toEqual([{ index: 1, begin: 2 * BLOCK }]);
    c.writeQueued = 0;
    c.emit('writable');
    await source.finishAll();
    expect(c.sent.map((a) => a.begin)).toEqual([0, BLOCK, 3 * BLOCK]);
    expect(c.rejected.length).toBe(1);
  });

  it('a request whose read is under way still gets its block, and no reject', async () => {
    const { source, c } = setup();
    c.emit('request', 2, 0, BLOCK);
    c.emit('cancel', 2, 0, BLOCK);
    await source.finishAll();
    expect(c.sent).toEqual([{ index: 2, begin: 0 }]);
    expect(c.rejected).toEqual([]);
  });

  it('a cancel of nothing asked, or asked twice, gets no answer', () => {
    const { c } = setup();
    c.writeQueued = 10 * 1024 * 1024;
    c.emit('request', 3, 0, BLOCK);
    c.emit('cancel', 3, BLOCK, BLOCK);
    c.emit('cancel', 3, 0, 100);
    expect(c.rejected).toEqual([]);
    c.emit('cancel', 3, 0, BLOCK);
    c.emit('cancel', 3, 0, BLOCK);
    expect(c.rejected).toEqual([{ index: 3, begin: 0 }]);
  });

  it('without the fast extension a cancelled request is only taken out', async () => {
    const { source, c } = setup(false);
    c.writeQueued = 10 * 1024 * 1024;
    c.emit('request', 4, 0, BLOCK);
    c.emit('cancel', 4, 0, BLOCK);
    c.writeQueued = 0;
    c.emit('writable');
    await source.finishAll();
    expect(c.sent).toEqual([]);
    expect(c.rejected).toEqual([]);
  });
});
