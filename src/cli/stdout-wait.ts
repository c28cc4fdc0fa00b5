/**
 * Waiting on stdout's reader, bounded: a reader that is slow but reads (a `--json` consumer
 * busy with each line) is waited for as long as it keeps taking bytes; one that takes nothing
 * for STDOUT_STALL_MS (a pipe nobody reads, a `| sleep 60`) is given up on, and the run exits
 * 141 saying how much output was dropped. Without the bound, `tdl info` of a large torrent and
 * `tdl create -o -` waited for such a reader for good.
 */
import { EXIT } from './exit-codes.js';
import type { CliIO } from './program.js';
import { monotonicMs } from '../clock.js';

/** The longest wait while stdout takes nothing with bytes left to write. */
export const STDOUT_STALL_MS = 2_000;
/** How often the bytes stdout holds are looked at. */
const LOOK_MS = 100;

/** What is read of a stream to see whether it takes bytes. */
export interface WatchedStream {
  writableLength?: number;
}

/**
 * Settles with `written` (a write's completion, or a wait for 'drain'), or with 'stalled' once
 * `s` has taken nothing for STDOUT_STALL_MS meanwhile: no byte it holds left it.
 */
export async function takenOrStalled(
  s: WatchedStream,
  written: Promise<void>,
): Promise<'taken' | 'stalled'> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<'stalled'>((resolve) => {
    let left = s.writableLength ?? 0;
    let since = monotonicMs();
    timer = setInterval(() => {
      // Nothing is written meanwhile: what stdout holds only goes down as its reader reads.
      const now = s.writableLength ?? 0;
      if (now < left) {
        left = now;
        since = monotonicMs();
      } else if (monotonicMs() - since >= STDOUT_STALL_MS) {
        resolve('stalled');
      }
    }, LOOK_MS);
    timer.unref();
  });
  try {
    return await Promise.race([written.then(() => 'taken' as const), stalled]);
  } finally {
    clearInterval(timer);
  }
}

/** The message of a stdout given up on, `left` bytes unwritten. */
export function stalledMessage(left: number): string {
  return `standard output took nothing for ${STDOUT_STALL_MS / 1000} s: ${left} bytes of output dropped`;
}

/**
 * Gives up on stdout's reader: what stdout holds is dropped (the stream destroyed, so that the
 * exit does not wait for it again), said on stderr; returns the exit code, 141.
 */
export function giveUpOnStdout(io: CliIO): number {
  const out = io.stdout as WatchedStream & { destroy?: () => void };
  io.stderr.write(`tdl: ${stalledMessage(out.writableLength ?? 0)}\n`);
  out.destroy?.();
  return EXIT.stdoutClosed;
}
