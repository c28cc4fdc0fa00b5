import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Inline } from '../../src/storage/fs-util.js';
import type { Span } from '../../src/storage/layout.js';
import { PieceWrites, WriteCancelled, type WriteHost } from '../../src/storage/piece-writes.js';
import { tempDir } from '../helpers/cli.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-piece-writes-'));
});
afterEach(async () => {
  await cleanup();
});

/** One file of `pieces` pieces of 4 bytes; its first write waits until `open()` is called. */
function host(file: string): { host: WriteHost; open: () => void; close: () => void } {
  const fd = openSync(file, 'w+');
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  return {
    host: {
      inline: new Inline(false),
      withFile: async (_i, fn) => {
        await gate;
        return fn(fd);
      },
      statHandle: () => Promise.reject(new Error('not used')),
      knownSize: () => 0,
      written: () => {},
      atWorkingName: () => true,
      movedToWorkingName: () => {},
      finalPath: () => file,
      partPath: () => file,
      currentPath: () => file,
    },
    open,
    close: () => closeSync(fd),
  };
}

const span = (index: number): Span[] => [
  { fileIndex: 0, fileOffset: index * 4, length: 4, pieceOffset: 0 },
];

describe('piece writes', () => {
  it('cancelQueued drops the pieces whose writes have not begun; those begun are written', async () => {
    const file = path.join(dir, 'f');
    const h = host(file);
    const w = new PieceWrites(h.host);
    const settled: string[] = [];
    // More pieces than WRITE_PARALLEL (8): the first 8 begin (waiting on the file), the rest wait.
    const writes = Array.from({ length: 12 }, (_, i) =>
      w.write(i, Buffer.from([i, i, i, i]), span(i)).then(
        () => settled.push(`${i} written`),
        (e: unknown) =>
          settled.push(e instanceof WriteCancelled ? `${i} cancelled` : `${i} failed`),
      ),
    );
    expect(w.cancelQueued()).toBe(4);
    expect(w.cancelQueued()).toBe(0);
    h.open();
    await Promise.all(writes);
    h.close();
    expect(settled.filter((s) => s.endsWith('cancelled')).sort()).toEqual(
      ['8 cancelled', '9 cancelled', '10 cancelled', '11 cancelled'].sort(),
    );
    expect(settled.filter((s) => s.endsWith('written'))).toHaveLength(8);
    // Nothing of the dropped pieces reached the file.
    expect(readFileSync(file).length).toBe(8 * 4);
  });
});
