/**
 * Connection slots (`--max-peers`): whether a handshaken peer may stay, how many connections the
 * pool may fill up to, and which peer gives its slot up.
 *
 * - A fresh address waits while every slot is taken: one peer per ROOM_INTERVAL_MS that
 *   `replacement` names (choking us long, or sending under a block in 20 s, and not one we
 *   upload to) makes room for it.
 * - While we starve (no data for a while) with every slot taken, one connection more is let in,
 *   dialled or incoming: the peers held may be leechers we upload to, which `replacement` spares,
 *   and a seeder that comes back must be able to show its pieces. Once it shows one we need, the
 *   peer `makeWayFor` names goes and it keeps the slot; showing none within EXTRA_SLOT_MS, it goes.
 *
 * Single-peer mode (`max` 1) has neither: its probe decides alone.
 */
import { makeWayFor, replacement, type Session } from './session.js';

/** At most one peer is replaced per this interval. */
export const ROOM_INTERVAL_MS = 5_000;
/** An extra connection that shows nothing we need this long is closed. */
export const EXTRA_SLOT_MS = 10_000;

export interface SlotDrop {
  session: Session;
  reason: string;
}

export class PeerSlots {
  /** The connection beyond `max`, until it is settled. */
  private extra: Session | null = null;
  private lastRoomMadeAt = 0;

  /** Single-peer mode (`max` 1): the probe of the core design, no room made, no extra. */
  readonly sequential: boolean;

  constructor(readonly max: number) {
    this.sequential = max === 1;
  }

  /** One more beyond `max`: only while starving, every slot taken, no other extra unsettled. */
  private mayExceed(connected: number, starving: boolean): boolean {
    return !this.sequential && starving && this.extra === null && connected === this.max;
  }

  /** Is there room for one more handshaken peer? */
  hasRoom(connected: number, starving: boolean): boolean {
    return connected < this.max || this.mayExceed(connected, starving);
  }

  /** The number of connections the pool may dial up to. */
  target(connected: number, starving: boolean): number {
    return this.max + (this.mayExceed(connected, starving) ? 1 : 0);
  }

  /** `s` was admitted; `connected` counts it. */
  admitted(s: Session, connected: number): void {
    if (connected > this.max) this.extra = s;
  }

  gone(s: Session): void {
    if (this.extra === s) this.extra = null;
  }

  /**
   * At each tick: the peer to drop and why, if any. `untried()`: addresses never tried (a reason
   * to make room; counted only when every slot is taken).
   */
  toDrop(sessions: readonly Session[], now: number, untried: () => number): SlotDrop | null {
    const x = this.extra;
    if (x) {
      if (sessions.length <= this.max) {
        this.extra = null;
      } else if (x.wanted > 0) {
        this.extra = null;
        const other = makeWayFor(x, sessions, now);
        if (other) return { session: other, reason: 'making room for a peer with pieces we need' };
      } else if (now - x.connectedAt >= EXTRA_SLOT_MS) {
        return { session: x, reason: 'no free peer slot' };
      }
    }
    if (this.sequential || sessions.length < this.max) return null;
    if (now - this.lastRoomMadeAt < ROOM_INTERVAL_MS || untried() === 0) return null;
    const worst = replacement(sessions, now);
    if (!worst) return null;
    this.lastRoomMadeAt = now;
    return { session: worst, reason: 'making room for a new peer' };
  }
}
