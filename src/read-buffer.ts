/**
 * Buffers that file reads land in.
 *
 * The kernel copies a read from the page cache into our buffer. On some CPUs (the AMD EPYC of
 * our bench machine) that copy runs about four times slower when the destination sits within a
 * few dozen bytes past a 4 KiB boundary of the source: reading 1 GiB from the page cache cost
 * 0.41 s of system time into a buffer starting at such an offset and 0.09 s into one starting 64
 * bytes further on (docs/DESIGN.md, "Storage: open files and system calls"). A large buffer is
 * its own mapping, and glibc puts its start 16 bytes into a page: exactly there, for every read
 * at a page-aligned file offset (every piece of a single-file torrent). So a buffer read into
 * again and again starts READ_SKEW bytes into its memory.
 */

/** Bytes skipped at the start of a read buffer's memory. */
export const READ_SKEW = 64;

/** Smaller buffers come from Node's shared pool, at no particular offset: left as they are. */
const SKEW_MIN_BYTES = 4096;

/** An uninitialised buffer of `size` bytes to read files into. */
export function readBuffer(size: number): Buffer {
  if (size < SKEW_MIN_BYTES) return Buffer.allocUnsafe(size);
  return Buffer.allocUnsafeSlow(size + READ_SKEW).subarray(READ_SKEW);
}

/** The same over shared memory, for reads a worker thread hashes (storage/hash-helper.ts). */
export function sharedReadBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size + READ_SKEW), READ_SKEW, size);
}
