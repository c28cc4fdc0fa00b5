#!/usr/bin/env node
/**
 * The `tdl` executable: wires process streams and signals to the CLI and exits with its code.
 * SIGINT/SIGTERM abort the run (sockets and files are closed, verified data stays on disk, the
 * trackers are told `stopped`); a second signal exits at once.
 */
import v8 from 'node:v8';
import { InterruptedError } from '../errors.js';
import { EXIT } from './exit-codes.js';
import { run } from './program.js';

// The only WebAssembly tdl runs is the HTTP parser inside undici, used for a few tracker
// requests. V8's optimizing WebAssembly tier would spend about 30 MB compiling it for no gain:
// the baseline compiler is enough (see docs/DESIGN.md, "Memory").
v8.setFlagsFromString('--liftoff-only');

const controller = new AbortController();
let signalled = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (signalled) process.exit(sig === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint);
    signalled = true;
    controller.abort(new InterruptedError(sig));
  });
}
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  // A closed pipe on stdout (`tdl ... --json | head`) is not worth a stack trace.
  if (e.code === 'EPIPE') process.exit(EXIT.ok);
});

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
});
process.exitCode = code;
// Open handles (a tracker that does not answer `stopped`) must not keep us alive.
setTimeout(() => process.exit(code), 2_000).unref();
