import { describe, expect, it } from 'vitest';
import { READ_SKEW, readBuffer } from '../../src/read-buffer.js';

describe('readBuffer', () => {
  it('starts a large buffer READ_SKEW bytes into memory of its own', () => {
    for (const size of [4096, 16 * 1024, 256 * 1024, 1024 * 1024 + 1]) {
      const b = readBuffer(size);
      expect(b.length).toBe(size);
      expect(b.byteOffset).toBe(READ_SKEW);
      expect(b.buffer.byteLength).toBe(size + READ_SKEW);
    }
  });

  it('leaves a small buffer to the shared pool', () => {
    const b = readBuffer(100);
    expect(b.length).toBe(100);
    expect(b.buffer.byteLength).toBeGreaterThan(100);
  });
});
