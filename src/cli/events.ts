/**
 * The one way tdl writes JSON to stdout: `--json` events and `tdl info --json`. Every object
 * carries `v`, the version of docs/events.schema.json it follows; fields are only ever added
 * within a version, and a change that could break a reader bumps it.
 */
import { monotonicMs } from '../clock.js';

/** Unread `--json` output beyond which `progress` events are skipped until the reader catches up. */
export const EVENTS_BACKLOG_BYTES = 1024 * 1024;

/** The schema version every JSON object tdl writes carries as `v`. */
export const EVENTS_VERSION = 1;

/** One object as one line of JSON, `v` first. */
export function jsonLine(o: Record<string, unknown>): string {
  return `${JSON.stringify({ v: EVENTS_VERSION, ...o })}\n`;
}

/**
 * Lets an event through at most once per `intervalMs` (the first one at once), and always when
 * it is `due` (the last of a run, or one that says something new): for progress reported per
 * piece or per metadata piece, which may come thousands of times a second.
 */
export class Pacer {
  private last = -Infinity;

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = () => monotonicMs(),
  ) {}

  /** Whether to let this one through; if so, the interval starts again. */
  pass(due = false): boolean {
    const t = this.now();
    if (!due && t - this.last < this.intervalMs) return false;
    this.last = t;
    return true;
  }
}
