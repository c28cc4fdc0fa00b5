/**
 * Bounded records kept in insertion order (a Map or a Set): what peers, nodes and files make
 * tdl remember is capped, and the oldest goes first.
 */

/**
 * Makes room for one more key in `kept`, which holds at most `max`: the oldest keys (first in
 * insertion order) are removed until fewer than `max` are left. Call it before adding a key
 * that is not there yet.
 */
export function makeRoom<K>(kept: Map<K, unknown> | Set<K>, max: number): void {
  for (const key of kept.keys()) {
    if (kept.size < max) return;
    kept.delete(key);
  }
}
