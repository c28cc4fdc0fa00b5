/**
 * Names tdl gives its own files next to the output.
 *
 * While a torrent is incomplete each of its files lives under a working name, the final name plus
 * `.part`, so that a partial download never passes for a complete one, not even by its names and
 * sizes. The resume file sits next to the output's root as `<root>.tdl-resume`. Both are derived
 * from the output plan alone, so every run finds the same names.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { planFileCount, planFilePath, type OutputPlan } from './output.js';

export const PART_SUFFIX = '.part';
export const RESUME_SUFFIX = '.tdl-resume';
/** The metadata of an incomplete download from a magnet link, kept beside its resume file. */
export const METADATA_SUFFIX = '.tdl-torrent';
/** Longest file name most file systems accept, in bytes. */
const NAME_MAX = 255;

/**
 * `p` with `suffix` appended to its last component. A name that would grow past NAME_MAX bytes
 * is cut (on a character boundary) and made unique again with a short hash of the full name.
 */
export function withSuffix(p: string, suffix: string): string {
  const dir = path.dirname(p);
  const base = path.basename(p);
  if (Buffer.byteLength(base + suffix) <= NAME_MAX) return p + suffix;
  const tag = `~${createHash('sha1').update(base).digest('hex').slice(0, 12)}`;
  const room = NAME_MAX - Buffer.byteLength(tag + suffix);
  let cut = '';
  for (const ch of base) {
    if (Buffer.byteLength(cut + ch) > room) break;
    cut += ch;
  }
  return path.join(dir, cut + tag + suffix);
}

/**
 * The working (`.part`) path of each planned file, in plan order. A torrent may itself contain
 * both `x` and `x.part`, or a file `x` beside a folder `x.part`: a working name never equals any
 * final name, any folder of the torrent or another working name.
 */
export function partPaths(plan: OutputPlan): string[] {
  const n = planFileCount(plan);
  const finals = new Set<string>(plan.dirs);
  for (let i = 0; i < n; i++) finals.add(planFilePath(plan, i));
  const taken = new Set<string>();
  return Array.from({ length: n }, (_, i) => {
    let p = withSuffix(planFilePath(plan, i), PART_SUFFIX);
    while (finals.has(p) || taken.has(p)) p = withSuffix(p, PART_SUFFIX);
    taken.add(p);
    return p;
  });
}

/**
 * Is every working path of this plan's files its final path plus `.part`? Yes when no final
 * name nor folder ends in `.part` and no name is long enough to be cut (see withSuffix): then no
 * working name can meet a final name, a folder or another working name, and `partPaths` need not
 * be kept.
 */
export function plainPartPaths(plan: OutputPlan): boolean {
  for (const d of plan.dirs) if (d.endsWith(PART_SUFFIX)) return false;
  for (let i = 0, n = planFileCount(plan); i < n; i++) {
    const p = planFilePath(plan, i);
    if (p.endsWith(PART_SUFFIX)) return false;
    const base = path.basename(p);
    // Bytes are at most 3 per UTF-16 unit: most names need no count.
    if (
      base.length * 3 + PART_SUFFIX.length > NAME_MAX &&
      Buffer.byteLength(base) + PART_SUFFIX.length > NAME_MAX
    ) {
      return false;
    }
  }
  return true;
}

/** The working path of file `i` of a plan, as partPaths gives it. */
export function partPathOf(plan: OutputPlan, i: number): string {
  return plainPartPaths(plan) ? planFilePath(plan, i) + PART_SUFFIX : partPaths(plan)[i]!;
}

/** Where the resume file of this output lives: beside the root, never inside the torrent's tree. */
export function resumePath(plan: OutputPlan): string {
  return withSuffix(plan.root, RESUME_SUFFIX);
}
