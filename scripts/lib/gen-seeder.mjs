/**
 * A torrent whose data is generated on the fly, and a seeder for it over TCP on 127.0.0.1: an
 * 8 GiB torrent needs no 8 GiB file. Byte-deterministic: piece i is words derived from i, so the
 * seeder and the .torrent's piece hashes agree without storing anything.
 *
 * Used by `npm run bench -- --scenario big-8g` and by tests with a smaller variant.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';

/**
 * @param {number} size total bytes
 * @param {number} pieceLength
 */
export function generatedData(size, pieceLength) {
  const pieceCount = Math.ceil(size / pieceLength);
  /** Piece `index` (a fresh buffer of its exact size). */
  function piece(index) {
    const len = Math.min(pieceLength, size - index * pieceLength);
    const buf = Buffer.allocUnsafe(Math.ceil(len / 4) * 4);
    const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    let x = (Math.imul(index + 1, 0x9e3779b1) ^ 0x85ebca6b) >>> 0 || 1;
    for (let j = 0; j < words.length; j++) {
      // xorshift32 per word: cheap, and no two pieces alike
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[j] = x;
    }
    return buf.subarray(0, len);
  }
  return { size, pieceLength, pieceCount, piece };
}

/** Minimal bencode for the .torrent (ints, byte strings, lists, dicts with sorted keys). */
function bencode(v) {
  if (typeof v === 'number') return Buffer.from(`i${v}e`);
  if (typeof v === 'string') v = Buffer.from(v);
  if (Buffer.isBuffer(v)) return Buffer.concat([Buffer.from(`${v.length}:`), v]);
  if (Array.isArray(v))
    return Buffer.concat([Buffer.from('l'), ...v.map(bencode), Buffer.from('e')]);
  const keys = Object.keys(v).sort();
  return Buffer.concat([
    Buffer.from('d'),
    ...keys.flatMap((k) => [bencode(k), bencode(v[k])]),
    Buffer.from('e'),
  ]);
}

/**
 * The .torrent of generated data: hashes every piece once. One file, or with `files` (lengths
 * that add up to the size) a folder `name` of files `f1.bin`, `f2.bin`, …
 * @param {ReturnType<typeof generatedData>} data
 * @param {string} name
 * @param {number[]} [files]
 */
export function generatedTorrent(data, name, files) {
  const hashes = Buffer.allocUnsafe(20 * data.pieceCount);
  for (let i = 0; i < data.pieceCount; i++) {
    createHash('sha1')
      .update(data.piece(i))
      .digest()
      .copy(hashes, 20 * i);
  }
  /** @type {Record<string, unknown>} */
  const info = { name, 'piece length': data.pieceLength, pieces: hashes };
  if (files) {
    if (files.reduce((a, b) => a + b, 0) !== data.size) throw new Error('file lengths != size');
    info.files = files.map((length, i) => ({ length, path: [`f${i + 1}.bin`] }));
  } else info.length = data.size;
  const infoBytes = bencode(info);
  return {
    torrent: bencode({ info }),
    infoHash: createHash('sha1').update(infoBytes).digest(),
  };
}

let seeders = 0;

/**
 * Seeds generated data to whoever connects: bitfield of every piece, unchoke on interest, each
 * request answered in order (with backpressure), pieces generated per request. With `keep`,
 * every piece is generated once, up front, and served from memory (the whole torrent in the
 * seeder's memory: for small torrents), so the seeder costs little more CPU than a real one
 * serving from its page cache; without it, generating takes about 1.2 s of CPU per GiB served.
 * @param {ReturnType<typeof generatedData>} data
 * @param {Buffer} infoHash
 * @param {{ keep?: boolean }} [opts]
 * @returns {Promise<{ port: number, served: () => number, close: () => Promise<void> }>}
 */
export async function startGeneratedSeeder(data, infoHash, opts = {}) {
  // each seeder its own peer id, as real peers have (tdl skips a second connection to one)
  const peerId = Buffer.from(`-GS0001-${String(++seeders).padStart(12, '0')}`);
  let served = 0;
  const sockets = new Set();
  // the last piece generated, as requests come in piece order from one peer most of the time
  let cached = { index: -1, buf: Buffer.alloc(0) };
  const kept = opts.keep ? Array.from({ length: data.pieceCount }, (_, i) => data.piece(i)) : null;
  const pieceOf = (index) => {
    if (kept) return /** @type {Buffer} */ (kept[index]);
    if (cached.index !== index) cached = { index, buf: data.piece(index) };
    return cached.buf;
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let handshaken = false;
    /** @type {{ index: number, begin: number, length: number }[]} */
    const queue = [];
    let waiting = false;
    const pump = () => {
      // header and block in one write (writev) rather than two
      socket.cork();
      try {
        pumpCorked();
      } finally {
        socket.uncork();
      }
    };
    const pumpCorked = () => {
      while (queue.length > 0 && !waiting && !socket.destroyed) {
        const r = /** @type {{ index: number, begin: number, length: number }} */ (queue.shift());
        const block = pieceOf(r.index).subarray(r.begin, r.begin + r.length);
        const head = Buffer.allocUnsafe(13);
        head.writeUInt32BE(9 + block.length, 0);
        head[4] = 7;
        head.writeUInt32BE(r.index, 5);
        head.writeUInt32BE(r.begin, 9);
        socket.write(head);
        served += block.length;
        // kept pieces are never changed; a generated one is replaced, not changed, by the next
        if (!socket.write(block)) {
          waiting = true;
          socket.once('drain', () => {
            waiting = false;
            pump();
          });
        }
      }
    };
    socket.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (!handshaken) {
        if (buf.length < 68) return;
        handshaken = true;
        buf = buf.subarray(68);
        const reserved = Buffer.alloc(8);
        socket.write(
          Buffer.concat([Buffer.from('\x13BitTorrent protocol'), reserved, infoHash, peerId]),
        );
        const bits = Buffer.alloc(Math.ceil(data.pieceCount / 8), 0xff);
        const spare = bits.length * 8 - data.pieceCount;
        if (spare > 0) bits[bits.length - 1] = (0xff << spare) & 0xff;
        const head = Buffer.alloc(5);
        head.writeUInt32BE(1 + bits.length, 0);
        head[4] = 5;
        socket.write(Buffer.concat([head, bits]));
      }
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (len > 1 << 20) return socket.destroy();
        if (buf.length < 4 + len) break;
        const id = len > 0 ? buf[4] : -1;
        if (id === 2)
          socket.write(Buffer.from([0, 0, 0, 1, 1])); // interested: unchoke
        else if (id === 6 && len === 13) {
          const index = buf.readUInt32BE(5);
          const begin = buf.readUInt32BE(9);
          const length = buf.readUInt32BE(13);
          const pieceLen = Math.min(data.pieceLength, data.size - index * data.pieceLength);
          if (index < data.pieceCount && begin + length <= pieceLen && length <= 1 << 17)
            queue.push({ index, begin, length });
        } else if (id === 8 && len === 13) {
          const index = buf.readUInt32BE(5);
          const begin = buf.readUInt32BE(9);
          const at = queue.findIndex((r) => r.index === index && r.begin === begin);
          if (at >= 0) queue.splice(at, 1);
        }
        buf = buf.subarray(4 + len);
      }
      pump();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const port = /** @type {net.AddressInfo} */ (server.address()).port;
  return {
    port,
    served: () => served,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}
