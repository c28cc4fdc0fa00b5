/**
 * The hashing workers of `tdl create`, started as early as the process can: a worker takes tens
 * of milliseconds to boot, and the main thread needs about as long again to parse the command
 * line and load the create command, so the two overlap when `prestartHashWorkers` runs first
 * thing (src/cli/main.ts imports this module before anything else). `createTorrent` adopts them
 * (`takeHashWorkers`) and starts what it still needs; one it does not want is terminated
 * (`dropPrestartedWorkers`). An adopted worker is unreferenced until then, so a run that never
 * reaches the hashing (a usage error, `--help`) exits as if it had never been started.
 *
 * None is started for an input that is surely a small file (`mayUseWorkers`): a worker dropped
 * while it boots still holds the exit until its boot ends, about 40 ms of a 0.15 s run.
 */
import { statSync } from 'node:fs';
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { HASH_WORKER_SOURCE } from './hash-worker.js';

/** Most hashing threads, the main thread included. */
export const MAX_HASH_THREADS = 8;
/**
 * A single file up to this size is hashed by the main thread alone (no worker to boot): a 40 MB
 * file took 0.09-0.10 s so against 0.14 s with a worker, 64 MiB about as long either way.
 */
export const WORKER_MIN_BYTES = 64 * 1024 * 1024;

/**
 * Options of `tdl create` whose value is the next word (as cli/program.ts defines them). A guess
 * gone wrong costs only time: createTorrent starts any worker it needs and was not given.
 */
export const CREATE_VALUE_OPTIONS: ReadonlySet<string> = new Set([
  '-o',
  '--output',
  '--tracker',
  '--web-seed',
  '--piece-length',
  '--comment',
  '--source',
  '--created-by',
]);

/**
 * Whether `tdl create` with these arguments (the words after `create`) may hash on workers:
 * false only when its input is surely a regular file of at most WORKER_MIN_BYTES (the rule
 * createTorrent applies). Anything unclear (no input found, a folder, a failed stat) says true.
 */
export function mayUseWorkers(args: readonly string[]): boolean {
  let input: string | undefined;
  for (let i = 0; i < args.length && input === undefined; i++) {
    const a = args[i]!;
    if (a === '--') input = args[i + 1];
    else if (CREATE_VALUE_OPTIONS.has(a)) i++;
    else if (!a.startsWith('-')) input = a;
  }
  if (input === undefined) return true;
  try {
    const st = statSync(input);
    return !(st.isFile() && st.size <= WORKER_MIN_BYTES);
  } catch {
    return true;
  }
}

/** Why each worker that stopped did so (kept until the worker is terminated). */
export const workerFailures = new WeakMap<Worker, Error>();

let early: Worker[] = [];

/** Hashing threads for this machine, the main thread included: at most MAX_HASH_THREADS. */
export function defaultHashThreads(): number {
  return Math.max(1, Math.min(os.availableParallelism(), MAX_HASH_THREADS));
}

/** A hashing worker, booting; a failure before it is given work is kept in workerFailures. */
export function startHashWorker(): Worker {
  // Loaded here, not imported: every command imports this module first thing (cli/main.ts), and
  // only `create` starts a thread; node:worker_threads is a millisecond of every other start.
  const { Worker } = process.getBuiltinModule('node:worker_threads');
  const w = new Worker(HASH_WORKER_SOURCE, { eval: true });
  w.on('error', (e) => workerFailures.set(w, e));
  w.on('exit', () => {
    if (!workerFailures.has(w)) workerFailures.set(w, new Error('a hashing thread stopped'));
  });
  return w;
}

/**
 * Start the workers `tdl create` will want; `args` are the words after `create` (see
 * cli/main.ts).
 */
export function prestartHashWorkers(args: readonly string[]): void {
  if (early.length > 0 || !mayUseWorkers(args)) return;
  for (let i = 1; i < defaultHashThreads(); i++) {
    const w = startHashWorker();
    w.unref();
    early.push(w);
  }
}

/** Up to `n` of the workers started early (referenced again: the caller waits for them). */
export function takeHashWorkers(n: number): Worker[] {
  const taken = early.splice(0, Math.max(0, n));
  for (const w of taken) w.ref();
  return taken;
}

/** Terminate the workers started early that nobody took. */
export function dropPrestartedWorkers(): void {
  for (const w of early.splice(0)) void w.terminate();
}
