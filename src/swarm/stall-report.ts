/**
 * Why a download gets nothing, in words, for its two errors: no usable peer at all
 * (NoPeersError, exit 4) and no data for `--timeout` (TransferError, exit 5). Each names what was
 * tried and what the peers connected now are doing, and the last problems seen (peers, trackers,
 * other peer sources, web seeds), at most three of the latter.
 */
import { NoPeersError, TransferError } from '../errors.js';
import type { WebSeeds } from '../webseed/scheduler.js';
import type { PeerSource } from './download-api.js';
import type { Session } from './session.js';

/**
 * Longest text of one problem in these errors (characters): a tracker's failure reason may be
 * 1,024, already shown whole in its warning.
 */
export const MAX_PROBLEM_CHARS = 200;

/** `s`, cut to MAX_PROBLEM_CHARS with an ellipsis. */
function brief(s: string): string {
  return s.length <= MAX_PROBLEM_CHARS ? s : `${s.slice(0, MAX_PROBLEM_CHARS - 1)}…`;
}

/**
 * The first `n` of `problems`, each cut by brief, then how many more there were: a message names
 * a few and counts the rest, so that none seems left out (each was a warning when it happened).
 */
export function someProblems(problems: readonly string[], n = 3): string[] {
  const named = problems.slice(0, n).map(brief);
  return problems.length > n ? [...named, `and ${problems.length - n} more`] : named;
}

export interface StallFacts {
  sessions: Iterable<Session>;
  /** Peer addresses known (tried or not). */
  candidates: number;
  /** Addresses of the other family than `--bind`, left out. */
  otherFamily: number;
  /** tdl's own addresses (its listening port here), left out; absent: 0. */
  own?: number;
  /** The last peer dropped, and why: `address: reason`, or ''. */
  lastFailure: string;
  tracker: PeerSource | undefined;
  sources: readonly { source: PeerSource; origin: string }[];
  webSeeds: WebSeeds | null;
  /** Pieces still needed, and how many of them no connected peer has; absent: not told. */
  needed?: { pieces: number; nowhere: number };
}

/**
 * Pieces still needed, and how many of them no connected peer has (counted once, when the run
 * stalls).
 */
export function neededPieces(
  picker: { needs(index: number): boolean; readonly availability: ArrayLike<number> },
  pieceCount: number,
): { pieces: number; nowhere: number } {
  let pieces = 0;
  let nowhere = 0;
  for (let i = 0; i < pieceCount; i++) {
    if (!picker.needs(i)) continue;
    pieces++;
    if (picker.availability[i] === 0) nowhere++;
  }
  return { pieces, nowhere };
}

/** The pieces still needed that no connected peer has, in words ('' when there are none). */
function neededText(n: { pieces: number; nowhere: number } | undefined): string {
  if (!n || n.nowhere === 0) return '';
  const s = n.pieces === 1 ? '' : 's';
  return n.nowhere === n.pieces
    ? `${n.pieces} piece${s} still needed, on no connected peer`
    : `${n.pieces} piece${s} still needed, ${n.nowhere} of them on no connected peer`;
}

/**
 * How many of the peers connected now have none of the pieces needed, how many have some but
 * not the whole torrent that `--max-peers 1` asks of its one peer (we are not interested in
 * them), how many choke us, and how many let us download yet send nothing (a peer stopped or
 * overloaded).
 */
export function connectedDetail(sessions: Iterable<Session>): string[] {
  let nothing = 0;
  let partial = 0;
  let choking = 0;
  let silent = 0;
  for (const s of sessions) {
    if (!s.conn.amInterested) {
      if (s.wanted > 0) partial++;
      else nothing++;
    } else if (s.conn.peerChoking) choking++;
    else silent++;
  }
  const out: string[] = [];
  if (nothing > 0) out.push(`${nothing} with none of the pieces still needed`);
  if (partial > 0) {
    out.push(
      `${partial} with some of the pieces needed but not every piece, which --max-peers 1 asks of its peer`,
    );
  }
  if (choking > 0) out.push(`${choking} choking us (not letting us download)`);
  if (silent > 0) out.push(`${silent} letting us download but sending nothing`);
  return out;
}

/**
 * What the peer sources said last, one text each: a tracker's failures by its URL (`tracker
 * URL: why`), any other source's by its origin (`dht: why`).
 */
export function sourceFailures(
  sources: readonly { source: PeerSource; origin: string }[],
): string[] {
  const out: string[] = [];
  for (const { source, origin } of sources) {
    for (const f of source.failures) {
      out.push(
        origin === 'tracker' && f.url
          ? `tracker ${f.url}: ${f.message}`
          : `${origin}: ${f.message}`,
      );
    }
  }
  return out;
}

/** What the tracker and the other peer sources said last (see sourceFailures). */
function peerSourceFailures(f: StallFacts): string[] {
  const tracker = f.tracker ? [{ source: f.tracker, origin: 'tracker' }] : [];
  return sourceFailures([...tracker, ...f.sources]);
}

/** The last error of each web seed that has one. */
export function webSeedErrors(ws: WebSeeds | null): string[] {
  const out: string[] = [];
  for (const w of ws?.seeds ?? []) if (w.lastError) out.push(w.lastError.message);
  return out;
}

/** `secs` as given: `--timeout 1.5` says 1.5s. */
function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}

/** No peer was ever usable and nothing came within `waitedMs`. */
export function noPeersError(f: StallFacts, waitedMs: number): NoPeersError {
  const parts: string[] = [];
  const sessions = [...f.sessions];
  const n = f.candidates;
  const own = f.own ?? 0;
  parts.push(
    n === 0
      ? own > 0
        ? "no peer address but tdl's own"
        : 'no peer addresses found'
      : `${n} peer address${n === 1 ? '' : 'es'} tried`,
  );
  if (own > 0) {
    parts.push(
      `${own} address${own === 1 ? '' : 'es'} left out for being tdl's own (its port on this machine)`,
    );
  }
  if (f.otherFamily > 0) {
    parts.push(
      `${f.otherFamily} of the other address family than --bind left out (IPv4 and IPv6 do not mix)`,
    );
  }
  parts.push(...connectedDetail(sessions).map((d) => `connected: ${d}`));
  if (f.lastFailure) parts.push(`last: ${f.lastFailure}`);
  const tf = [...peerSourceFailures(f), ...webSeedErrors(f.webSeeds)];
  parts.push(...someProblems(tf));
  return new NoPeersError(`no usable peer within ${seconds(waitedMs)}s (${parts.join('; ')})`);
}

/** Data came before, then none for `waitedMs`. */
export function stalledError(f: StallFacts, waitedMs: number): TransferError {
  const sessions = [...f.sessions];
  const n = sessions.length;
  const detail = connectedDetail(sessions);
  const connected = `${n} peer${n === 1 ? '' : 's'} connected${detail.length > 0 ? `: ${detail.join(', ')}` : ''}`;
  const problems: string[] = [];
  const needed = neededText(f.needed);
  if (needed) problems.push(needed);
  if (f.lastFailure) problems.push(`last peer problem: ${f.lastFailure}`);
  // Web seeds that fail count too: the data may have been expected from them alone; and the
  // peer sources, which may have had the peers with the pieces still needed.
  problems.push(...webSeedErrors(f.webSeeds));
  problems.push(...peerSourceFailures(f));
  return new TransferError(
    `no data for ${seconds(waitedMs)}s (${connected})${problems.length > 0 ? `; ${someProblems(problems, needed ? 4 : 3).join('; ')}` : ''}`,
  );
}
