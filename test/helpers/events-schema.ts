/**
 * Checks tdl's JSON output against docs/events.schema.json, the schema it publishes. Every test
 * that reads `--json` events or `tdl info --json` goes through `checkEvent`, so a field that
 * changes or goes missing fails the test that saw it.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';

export const SCHEMA_PATH = new URL('../../docs/events.schema.json', import.meta.url);
export const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as Record<string, unknown>;

// strict: unknown keywords or formats in the schema are errors, not silently ignored. Required
// fields may be listed beside an `if` without repeating their definitions.
const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true });
const validate = ajv.compile(schema);

/** The schema's complaints about `o` (empty when it is valid). */
export function eventErrors(o: unknown): string[] {
  if (validate(o)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`.trim());
}

/** Throws when `o` does not follow the schema; returns it otherwise. */
export function checkEvent<T>(o: T): T {
  const errors = eventErrors(o);
  if (errors.length > 0) {
    throw new Error(
      `JSON output does not match docs/events.schema.json: ${errors.join('; ')}\n` +
        `in ${JSON.stringify(o)}`,
    );
  }
  return o;
}

/** Every line of `stdout` that starts with `{`, parsed and checked. */
export function parseEvents(stdout: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    out.push(checkEvent(JSON.parse(line) as Record<string, unknown>));
  }
  return out;
}
