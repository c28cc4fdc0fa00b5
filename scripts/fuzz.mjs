#!/usr/bin/env node
/**
 * `npm run fuzz`: the property tests of every parser of untrusted bytes, longer than in
 * `npm test` and with a random seed (printed, so a failure can be replayed with FUZZ_SEED=...).
 */
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';

const seed = process.env.FUZZ_SEED ?? String(randomInt(1, 2 ** 31 - 1));
const runs = process.env.FUZZ_RUNS ?? '30000';
process.stderr.write(`fuzz: FUZZ_SEED=${seed} FUZZ_RUNS=${runs}\n`);
const r = spawnSync('npx', ['vitest', 'run', 'test/fuzz', 'test/e2e/paths.test.ts'], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_SEED: seed, FUZZ_RUNS: runs },
});
process.exitCode = r.status ?? 1;
