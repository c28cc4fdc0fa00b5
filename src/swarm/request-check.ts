/**
 * Whether to serve a peer's `request`. Pure: the caller passes what it knows about the torrent
 * and the connection, and acts on the verdict:
 * - `ok`: queue the request (read the block from a verified, written piece when its turn comes);
 * - `reject`: send BEP 6 `reject` if the peer supports the fast extension, else drop it silently;
 * - `close`: the request is absurd (a length no client asks for); close the connection.
 *
 * The checks, in order (the first failing one decides): length above CLOSE_REQUEST_LENGTH
 * (close), length 0 or above MAX_REQUEST_LENGTH, index out of range, block outside the piece,
 * a piece we do not have, we choke the peer and the piece is not allowed-fast, the queue full.
 */

/** Largest block we serve (BLOCK_SIZE); larger requests are rejected. */
export const MAX_REQUEST_LENGTH = 16384;
/** Larger than this, the peer is broken or hostile: close the connection. */
export const CLOSE_REQUEST_LENGTH = 131072;
export type RequestVerdict =
  { ok: true } | { ok: false; action: 'reject' | 'close'; reason: string };

export interface RequestContext {
  pieceCount: number;
  /** Length of piece `i` (the last piece may be shorter). */
  pieceSize: (i: number) => number;
  /** Piece `i` is verified and written. */
  have: (i: number) => boolean;
  /** We choke this peer. */
  choking: boolean;
  /** Piece `i` is in the allowed-fast set we sent this peer (BEP 6); () => false without it. */
  allowedFast: (i: number) => boolean;
  /** Requests from this peer already queued. */
  queued: number;
  maxQueue: number;
}

const reject = (reason: string): RequestVerdict => ({ ok: false, action: 'reject', reason });

export function checkRequest(
  req: { index: number; begin: number; length: number },
  ctx: RequestContext,
): RequestVerdict {
  const { index, begin, length } = req;
  if (length > CLOSE_REQUEST_LENGTH) {
    return {
      ok: false,
      action: 'close',
      reason: `request of ${length} bytes (more than ${CLOSE_REQUEST_LENGTH})`,
    };
  }
  if (length === 0) return reject('request of 0 bytes');
  if (length > MAX_REQUEST_LENGTH) {
    return reject(`request of ${length} bytes (more than ${MAX_REQUEST_LENGTH})`);
  }
  if (index >= ctx.pieceCount) return reject(`request for piece ${index} of ${ctx.pieceCount}`);
  const size = ctx.pieceSize(index);
  // begin and length are 32-bit unsigned: their sum is exact in a double.
  if (begin + length > size) {
    return reject(`request for ${begin}+${length} outside piece ${index} of ${size} bytes`);
  }
  if (!ctx.have(index)) return reject(`request for piece ${index}, which we do not have`);
  if (ctx.choking && !ctx.allowedFast(index)) return reject('request while choked');
  if (ctx.queued >= ctx.maxQueue) return reject(`request queue full (${ctx.maxQueue})`);
  return { ok: true };
}
