/**
 * Path rules for file names coming from a .torrent. Unsafe names are REJECTED, never rewritten:
 * a torrent that would write outside its folder, or two of whose files would land on the same
 * path, is refused as a whole.
 */
import { MetainfoError } from '../errors.js';

/** Most components allowed in one file path (deeper trees are refused). */
export const MAX_PATH_DEPTH = 128;

const DRIVE_LETTER = /^[A-Za-z]:/;
const ONLY_DOTS = /^\.+$/;

/** NFC-normalises a path component (call before checking or comparing). */
export function normalizeComponent(component: string): string {
  return component.normalize('NFC');
}

/**
 * Checks one (already NFC-normalised) path component; throws MetainfoError naming `field`.
 * Refused: empty, only dots (".", "..", "..."), '/', '\', NUL, and the Windows drive-letter
 * form ("C:", "c:foo").
 */
export function checkPathComponent(component: string, field: string): void {
  if (component.length === 0) throw new MetainfoError(field, 'empty path component');
  if (ONLY_DOTS.test(component)) {
    throw new MetainfoError(field, `path component ${JSON.stringify(component)} is only dots`);
  }
  if (component.includes('/') || component.includes('\\')) {
    throw new MetainfoError(
      field,
      `path component ${JSON.stringify(component)} contains a path separator`,
    );
  }
  if (component.includes('\0')) {
    throw new MetainfoError(field, `path component ${JSON.stringify(component)} contains NUL`);
  }
  if (DRIVE_LETTER.test(component)) {
    throw new MetainfoError(
      field,
      `path component ${JSON.stringify(component)} looks like a drive letter`,
    );
  }
}

/**
 * Checks a whole relative path (list of normalised components): non-empty, not too deep,
 * every component valid, and the joined path not absolute.
 */
export function checkRelativePath(components: readonly string[], field: string): void {
  if (components.length === 0) throw new MetainfoError(field, 'empty path');
  if (components.length > MAX_PATH_DEPTH) {
    throw new MetainfoError(field, `path has more than ${MAX_PATH_DEPTH} components`);
  }
  components.forEach((c, i) => checkPathComponent(c, `${field}[${i}]`));
  const joined = components.join('/');
  if (joined.startsWith('/') || joined.startsWith('\\') || DRIVE_LETTER.test(joined)) {
    throw new MetainfoError(field, 'path is absolute');
  }
}

/**
 * Refuses two files that would collide on disk: equal normalised paths, or one file's path
 * being a directory (proper prefix) of another's. `fieldOf(i)` names file i in messages.
 * Components never contain '/', so '/'-joined strings identify paths unambiguously.
 */
export function checkPathCollisions(
  paths: readonly (readonly string[])[],
  fieldOf: (i: number) => string,
): void {
  const files = new Map<string, number>();
  paths.forEach((p, i) => {
    const key = p.join('/');
    const other = files.get(key);
    if (other !== undefined) {
      throw new MetainfoError(fieldOf(i), `same path as ${fieldOf(other)} (${key})`);
    }
    files.set(key, i);
  });
  paths.forEach((p, i) => {
    let prefix = '';
    for (let k = 0; k < p.length - 1; k++) {
      prefix = k === 0 ? p[0]! : `${prefix}/${p[k]!}`;
      const other = files.get(prefix);
      if (other !== undefined) {
        throw new MetainfoError(
          fieldOf(i),
          `is inside ${prefix}, which is also a file (${fieldOf(other)})`,
        );
      }
    }
  });
}
