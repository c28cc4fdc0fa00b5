import { TdlError, type ErrorKind } from '../errors.js';

/** Documented exit codes (README.md, "Exit codes"). */
export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  invalidTorrent: 3,
  noPeers: 4,
  transfer: 5,
  disk: 6,
  /** SIGHUP: the terminal tdl ran in was closed. */
  sighup: 129,
  sigint: 130,
  /** stdout closed by its reader: what a shell reports for a process ended by SIGPIPE. */
  stdoutClosed: 141,
  sigterm: 143,
} as const;

const BY_KIND: Record<ErrorKind, number> = {
  usage: EXIT.usage,
  'invalid-torrent': EXIT.invalidTorrent,
  'no-peers': EXIT.noPeers,
  transfer: EXIT.transfer,
  disk: EXIT.disk,
  interrupted: EXIT.sigint,
  protocol: EXIT.transfer,
};

export function exitCodeFor(e: unknown): number {
  if (e instanceof TdlError) {
    if (e.kind === 'interrupted') {
      const signal = (e as { signal?: string }).signal;
      if (signal === 'SIGPIPE') return EXIT.stdoutClosed;
      if (signal === 'SIGHUP') return EXIT.sighup;
      return signal === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
    }
    return BY_KIND[e.kind];
  }
  return EXIT.internal;
}
