/**
 * One typed error family for all of tdl. Modules throw these; only the CLI turns them into
 * messages on stderr and exit codes (see src/cli/exit-codes.ts).
 */

export type ErrorKind =
  | 'usage' // bad command line
  | 'invalid-torrent' // malformed or unsafe .torrent (bencode, fields, paths)
  | 'no-peers' // tracker failure or no usable peer before the deadline
  | 'transfer' // download could not complete
  | 'disk' // file system error
  | 'interrupted' // SIGINT / SIGTERM
  | 'protocol' // a peer or tracker broke the protocol (never fatal for a download)
  | 'timeout'; // a bounded wait ran out

export class TdlError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = new.target.name;
  }
}

export class UsageError extends TdlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('usage', message, options);
  }
}

/** Malformed bencode. `offset` is the byte where the problem was found. */
export class BencodeError extends TdlError {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super('invalid-torrent', `${message} at byte ${offset}`);
    this.offset = offset;
  }
}

/** A .torrent that decodes but is not a valid or safe torrent. `field` names the culprit. */
export class MetainfoError extends TdlError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('invalid-torrent', `${field}: ${message}`);
    this.field = field;
  }
}

/** A peer broke the wire protocol: the peer is dropped, the download goes on. */
export class WireError extends TdlError {
  constructor(message: string) {
    super('protocol', message);
  }
}

/** A tracker failed or answered badly: a warning unless no other source of peers works. */
export class TrackerError extends TdlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('no-peers', message, options);
  }
}

/** A DHT node sent a malformed KRPC message: the datagram is dropped, the node may be marked bad. */
export class DhtError extends TdlError {
  constructor(message: string) {
    super('protocol', message);
  }
}

export class NoPeersError extends TdlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('no-peers', message, options);
  }
}

export class TransferError extends TdlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('transfer', message, options);
  }
}

export class DiskError extends TdlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('disk', message, options);
  }
}

export class TimeoutError extends TdlError {
  constructor(message: string) {
    super('timeout', message);
  }
}

export class InterruptedError extends TdlError {
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals) {
    super('interrupted', `interrupted by ${signal}`);
    this.signal = signal;
  }
}
