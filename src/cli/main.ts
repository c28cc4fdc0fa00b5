#!/usr/bin/env node
/**
 * The `tdl` executable: wires process streams and signals to the CLI and exits with its code.
 * SIGINT/SIGTERM/SIGHUP abort the run (sockets and files are closed, verified data stays on disk,
 * the trackers are told `stopped`); a second signal, from REPEAT_SIGNAL_MS after the first,
 * exits at once. A closed stdout (`tdl download
 * --json … | head -1`) ends the run the same way, with exit code 141 as SIGPIPE would; a stdout
 * on a full disk too, as a disk error (exit 6).
 */
import { closeSync } from 'node:fs';
import { isatty } from 'node:tty';
import v8 from 'node:v8';
import { DiskError, InterruptedError, stdoutWriteError, type TdlError } from '../errors.js';
import { prestartHashWorkers } from '../metainfo/hash-prestart.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { run } from './program.js';
import { stalledMessage, takenOrStalled } from './stdout-wait.js';
import { monotonicMs } from '../clock.js';

// The only WebAssembly tdl runs is the HTTP parser inside undici (web seeds, `.torrent` URLs).
// V8's optimizing WebAssembly tier would spend about 30 MB compiling it for no gain: the
// baseline compiler is enough (see docs/DESIGN.md, "Memory").
v8.setFlagsFromString('--liftoff-only');
// V8's young generation starts at 1 MiB a semi-space and doubles, up to 16 MiB, each time as many
// bytes have survived a scavenge as it holds. A long download lets that sum grow without end
// (the blocks in flight survive one scavenge each), so the young generation ended at 2 × 16 MiB on
// 8 GiB (about 25 MB more RSS than at 1 GiB) for no gain: tdl's garbage is short-lived, and the
// CPU of a 256 MiB or 3,000-file download is the same at 1 MiB. A factor of 1 keeps it there
// (docs/DESIGN.md, "Memory"). The bundle's entry sets it before compiling, with --liftoff-only.
v8.setFlagsFromString('--semi-space-growth-factor=1');

// `tdl create`: its hashing workers boot while the command loads (see hash-prestart.ts).
if (process.argv[2] === 'create') prestartHashWorkers(process.argv.slice(3));

/**
 * A signal this soon after the first is the same stop delivered twice, not a second Ctrl-C:
 * `timeout` passes its signal to its child and then to the whole process group, and a Ctrl-C
 * reaches a wrapper (`timeout`, a script's trap) that forwards it besides reaching tdl.
 */
const REPEAT_SIGNAL_MS = 250;

/** The standard streams that were a terminal at start. */
const terminalFds = [0, 1, 2].filter((fd) => isatty(fd));
let hungUp = false;

/**
 * Exits with `code`. After a SIGHUP the terminal is gone, and Node 20, at exit, restores the
 * terminal settings it found at start and aborts when that fails (nodejs/node#51519, fixed in
 * later lines): tdl would die of SIGABRT or SIGSEGV instead of exiting 129. Node skips a
 * descriptor that was closed, so the terminal's are closed first.
 */
function exitWith(code: number): never {
  if (hungUp) {
    for (const fd of terminalFds) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  }
  process.exit(code);
}

const controller = new AbortController();
let signalled = false;
/** The run has ended; only its output is being flushed. */
let ending = false;
/** When the first signal came (monotonicMs()), or -1. */
let firstSignalAt = -1;
// SIGHUP (the terminal closed, an ssh session dropped) ends the run as the others do: left to
// Node, it would kill tdl at once, with no final checkpoint and no `stopped` to the trackers.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (sig === 'SIGHUP') hungUp = true;
    const now = monotonicMs();
    if (firstSignalAt >= 0 && now - firstSignalAt < REPEAT_SIGNAL_MS) return;
    // The run is over and only its last lines wait for a reader: nothing left to stop.
    if (ending) exitWith(exitCodeFor(new InterruptedError(sig)));
    if (signalled) {
      // Said, as the first stop is: the run's own end (its last checkpoint, `stopped` to the
      // trackers) is cut short; what earlier checkpoints saved is kept.
      process.stderr.write(`tdl: ${sig} again: exiting at once, without the final checkpoint\n`);
      exitWith(exitCodeFor(new InterruptedError(sig)));
    }
    signalled = true;
    firstSignalAt = now;
    controller.abort(new InterruptedError(sig));
  });
}
// SIGUSR1 would open Node.js's inspector on 127.0.0.1:9229 (a port any local user could reach
// to run code inside tdl) and print "Debugger listening" whatever -q says: a listener keeps that
// from happening. tdl has no use for the signal, so it is ignored.
process.on('SIGUSR1', () => {});
/** Why stdout failed, once it has (its exit code is the run's when the run itself succeeded). */
let stdoutError: TdlError | null = null;
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  // Nothing more can be written (EPIPE: the reader is gone). Node ignores SIGPIPE, so do what
  // it would have done, gracefully: stop the run (final checkpoint, `stopped` announce) and
  // exit 141, never 0, which would mean "done". A full disk behind a redirection stops it the
  // same way, as a disk error (exit 6).
  if (stdoutError) return;
  stdoutError = stdoutWriteError(e);
  signalled = true; // a Ctrl-C from now on exits at once
  if (!process.exitCode) process.exitCode = exitCodeFor(stdoutError);
  controller.abort(stdoutError);
});
// stderr's reader went away (`2>&1 | head`, a closed log pipe, a terminal gone): messages can
// no longer be shown, which is no reason to fail or stop a run. Unheard, the error would crash
// tdl with exit 1 in the middle of whatever it was doing (a checkpoint, the `stopped` announce).
process.stderr.on('error', () => {});

// No top-level await: the shipped bundle is one classic script (docs/DESIGN.md, "Start-up and
// the shipped bundle").
void main();

async function main(): Promise<void> {
  // A terminal that cannot move its cursor (TERM=dumb: Emacs' shell, some CI logs) gets what a
  // pipe gets: no line redrawn with \r and escape codes, only the lines said once.
  const dumb = process.env['TERM'] === 'dumb';
  const code = await run(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: dumb ? { write: (s: string) => process.stderr.write(s), isTTY: false } : process.stderr,
    signal: controller.signal,
  });
  // A last write that failed has already errored the stream, but its 'error' event only comes
  // on a later tick, after which tdl would have exited 0 (`tdl verify > /dev/full`).
  const failed = process.stdout.errored as NodeJS.ErrnoException | null;
  if (!stdoutError && failed) stdoutError = stdoutWriteError(failed);
  // A run that succeeded while its last lines went unread still reports the closed pipe (the
  // handler above does it if the error only comes later).
  process.exitCode = stdoutError && code === EXIT.ok ? exitCodeFor(stdoutError) : code;
  // The run ended before the failure reached it (`tdl info > /dev/full`): a full disk is said;
  // a reader that left (EPIPE) is not, as a shell says nothing of SIGPIPE.
  if (code === EXIT.ok && stdoutError instanceof DiskError) {
    process.stderr.write(`tdl: ${stdoutError.message}\n`);
  }
  // Everything the run started has ended by now (the `stopped` announces were sent, files closed).
  // Exit as soon as our own output is written: letting Node tear down by itself costs tens of
  // milliseconds more, and a straggling handle (a tracker that does not answer `stopped`) must
  // not keep us alive. Tests set TDL_EXIT_GRACE_MS to wait instead for the loop to empty (up to
  // that long), to tell a clean end from this exit.
  const exit = () => exitWith(Number(process.exitCode ?? 0));
  ending = true;
  const [outTaken] = await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  if (!outTaken && !stdoutError) {
    // What stdout did not take is lost: never exit 0 then (a --json reader missed `done`).
    process.stderr.write(`tdl: ${stalledMessage(process.stdout.writableLength)}\n`);
    process.exitCode = EXIT.stdoutClosed;
  }
  const grace = Number(process.env['TDL_EXIT_GRACE_MS'] ?? '');
  if (grace > 0) setTimeout(exit, grace).unref();
  else exit();
}

/**
 * Resolves with true once `s` holds no unwritten data (at once where stdio writes are
 * synchronous), or with false once it has taken nothing for STDOUT_STALL_MS. An empty write's
 * callback runs after every write before it: 'drain' would only come after a write that went
 * over the high-water mark.
 */
async function flushed(s: NodeJS.WriteStream): Promise<boolean> {
  if (s.writableLength === 0 || s.destroyed || s.writableEnded) return true;
  const written = new Promise<void>((resolve) => {
    s.write('', () => resolve());
    s.once('close', () => resolve());
  });
  return (await takenOrStalled(s, written)) === 'taken';
}
