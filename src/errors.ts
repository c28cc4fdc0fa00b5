/**
 * One typed error family for all of tdl. Modules throw these; only the CLI turns them into
 * messages on stderr and exit codes (see src/cli/exit-codes.ts).
 */

import { getSystemErrorMap } from 'node:util';

export type ErrorKind =
  | 'usage' // bad command line
  | 'invalid-torrent' // malformed or unsafe .torrent (bencode, fields, paths)
  | 'no-peers' // tracker failure or no usable peer before the deadline
  | 'transfer' // download could not complete
  | 'disk' // file system error
  | 'interrupted' // SIGINT / SIGTERM / SIGHUP, or stdout closed under us (as SIGPIPE would)
  | 'protocol'; // a peer or tracker broke the protocol (never fatal for a download)

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

/**
 * `--json` refused because stdout is a file the download would write: its `error` event would go
 * into that data too, so the message is said on stderr alone.
 */
export class EventsIntoDataError extends UsageError {}

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

/** A DHT query that got no answer in time. */
export class DhtTimeoutError extends DhtError {}

/**
 * A DHT query that was never answered because of us: our queue was full or our socket closed.
 * It says nothing about the node it was meant for.
 */
export class DhtBusyError extends DhtError {}

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

export class InterruptedError extends TdlError {
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals) {
    super('interrupted', `interrupted by ${signal}`);
    this.signal = signal;
  }
}

/**
 * stdout was closed by its reader (`tdl download --json … | head -1`): the run ends as on
 * Ctrl-C, with exit code 141 like a process ended by SIGPIPE.
 */
export class StdoutClosedError extends TdlError {
  readonly signal = 'SIGPIPE';
  constructor(code?: string) {
    super('interrupted', `stopped: standard output was closed${code ? ` (${code})` : ''}`);
  }
}

/** Codes of a failed write to stdout that mean its file system failed, not that a reader left. */
const OUTPUT_FAULTS = new Set([
  'ENOSPC',
  'EDQUOT',
  'EFBIG',
  'EIO',
  'EROFS',
  // stdout not open for writing (`1</dev/null`): nobody closed anything
  'EBADF',
  'EINVAL',
  'EISDIR',
  'EACCES',
  'EPERM',
]);

/**
 * What a failed write to stdout means: a full or failing file system behind a redirection
 * (`-o - > file`: a DiskError, exit 6) or a stdout that cannot be written at all (`1</dev/null`:
 * EBADF, the same), or else a reader that went away (EPIPE: exit 141).
 */
export function stdoutWriteError(e: Error): TdlError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code !== undefined && OUTPUT_FAULTS.has(code)) {
    return new DiskError(`cannot write to standard output: ${systemErrorText(e)}`, { cause: e });
  }
  return new StdoutClosedError(code ?? e.message);
}

/** System error names (`ENOENT`) to their words, from libuv's table; built at first use. */
let errorWords: Map<string, string> | undefined;

function wordsFor(code: string): string | undefined {
  if (errorWords === undefined) {
    errorWords = new Map([...getSystemErrorMap().values()]);
    // Errors of Linux that libuv's table lacks.
    errorWords.set('EDQUOT', 'disk quota exceeded');
  }
  return errorWords.get(code);
}

/**
 * What a failed system call says, in words (`no such file or directory`, `permission denied`),
 * as a shell's tools print it, without the call and path that Node's message adds (the caller
 * names the file). Any other error's message as it is; the code when there is nothing else.
 */
export function systemErrorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as NodeJS.ErrnoException).code;
  const words = typeof code === 'string' ? wordsFor(code) : undefined;
  if (words !== undefined) return words;
  return e.message === '' && typeof code === 'string' ? code : e.message;
}

/** An OpenSSL error (`ERR_SSL_…`, with its `reason`) in words, or undefined. */
function tlsWords(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  const { code, reason } = e as { code?: unknown; reason?: unknown };
  if (typeof code !== 'string' || !code.startsWith('ERR_SSL_') || typeof reason !== 'string') {
    return undefined;
  }
  // The usual one: https:// to a server that speaks plain HTTP.
  const hint = code === 'ERR_SSL_WRONG_VERSION_NUMBER' ? '; is it an http:// server?' : '';
  return `TLS failed: ${reason} (${code}${hint})`;
}

/**
 * A one-line description of any thrown value for warnings and logs: the message, plus the
 * error code (`ECONNREFUSED`, …) of the error and of its cause when the message lacks them.
 */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // OpenSSL's text (`80…:error:0A00010B:SSL routines:…:ssl3_record.c:350:\n`) says little and
  // ends in a newline: its reason in words, and the code.
  const tls = tlsWords(err) ?? tlsWords((err as { cause?: unknown }).cause);
  if (tls !== undefined) return tls;
  // Node's own words for a failed call (`connect ECONNREFUSED 127.0.0.1:6881`) name the call and
  // the address, which the caller names already: the error in words, and its code for scripts.
  const { code, syscall } = err as NodeJS.ErrnoException;
  if (typeof code === 'string') {
    const words = wordsFor(code);
    // A write after the peer's FIN is EPIPE in other words ("This socket has been ended by the
    // other party"): the same drop said the same way.
    const own =
      typeof syscall === 'string' ? err.message.startsWith(`${syscall} ${code}`) : code === 'EPIPE';
    if (words !== undefined && own) return `${words} (${code})`;
  }
  const codes: string[] = [];
  for (const e of [err, (err as { cause?: unknown }).cause]) {
    const code = e instanceof Error ? (e as { code?: unknown }).code : undefined;
    if (typeof code === 'string' && !err.message.includes(code) && !codes.includes(code)) {
      codes.push(code);
    }
  }
  return codes.length > 0 ? `${err.message} (${codes.join(', ')})` : err.message;
}
