/**
 * Where a torrent says to look for peers and data: its trackers (`announce`, BEP 12
 * `announce-list`), DHT contacts (BEP 5 `nodes`) and web seeds (BEP 19 `url-list`, BEP 17
 * `httpseeds`). Nothing here is fatal: what is malformed is skipped, web seeds with a warning.
 */
import { type BValue, isBytes, isList, tryText } from './bencode.js';
import type { Warnings } from './warnings.js';

export function parseTrackerUrl(v: BValue | undefined): string | undefined {
  if (!isBytes(v)) return undefined;
  const text = tryText(v)?.trim();
  return text ? text : undefined;
}

/**
 * `announce-list` (BEP 12): the tiers as the torrent gives them, duplicates within a tier
 * dropped. All are kept (`tdl info` shows them); the announcer uses the first MAX_TRACKERS.
 */
export function parseAnnounceList(v: BValue | undefined): string[][] {
  if (!isList(v)) return [];
  const tiers: string[][] = [];
  for (const tier of v) {
    if (!isList(tier)) continue;
    // A Set: a tier of 100,000 URLs (a 64 MiB torrent holds millions) must not take minutes.
    const urls = new Set<string>();
    for (const u of tier) {
      const url = parseTrackerUrl(u);
      if (url !== undefined) urls.add(url);
    }
    if (urls.size > 0) tiers.push([...urls]);
  }
  return tiers;
}

/** DHT contacts kept from a torrent's `nodes` at most. */
export const MAX_NODES = 100;

/** `nodes`: a list of [host, port] pairs; anything malformed is skipped, never fatal. */
export function parseNodes(v: BValue | undefined): { host: string; port: number }[] {
  if (!isList(v)) return [];
  const out: { host: string; port: number }[] = [];
  for (const item of v) {
    if (out.length >= MAX_NODES) break;
    if (!isList(item) || item.length !== 2) continue;
    const [h, p] = item;
    const host = isBytes(h) ? tryText(h) : undefined;
    if (!host || host.length > 253 || !/^[A-Za-z0-9.:-]+$/.test(host)) continue;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) continue;
    out.push({ host, port: p });
  }
  return out;
}

/** True for an absolute http: or https: URL with a host, written out with its `//`. */
export function isHttpUrl(text: string): boolean {
  // The URL parser forgives much (`http:host/x`, `http:\\host`); a seed list should not need it.
  if (!/^https?:\/\/[^/]/i.test(text)) return false;
  try {
    const u = new URL(text);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * Web seed lists (BEP 19 `url-list`, BEP 17 `httpseeds`): one URL or a list of them. Entries
 * that are not http(s) URLs are dropped with a warning; duplicates are dropped.
 */
export function parseWebSeeds(v: BValue | undefined, field: string, warnings: Warnings): string[] {
  if (v === undefined) return [];
  const items = isBytes(v) ? [v] : isList(v) ? v : undefined;
  if (items === undefined) {
    warnings.add(`${field}: ignored (must be a URL or a list of URLs)`);
    return [];
  }
  // A Set: a list of 100,000 URLs (a 64 MiB torrent holds millions) must not take minutes.
  const out = new Set<string>();
  items.forEach((item, i) => {
    const text = isBytes(item) ? tryText(item)?.trim() : undefined;
    // An empty string is how some tools write "no web seed".
    if (text === '') return;
    if (text === undefined || !isHttpUrl(text)) {
      const shown = text === undefined ? '' : ` ${JSON.stringify(text)}`;
      warnings.add(`${field}[${i}]:${shown} ignored (not an http or https URL)`);
      return;
    }
    out.add(text);
  });
  return [...out];
}
