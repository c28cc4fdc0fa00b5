/**
 * Things a torrent's parser accepts but tells the user about: at most MAX_ITEM_WARNINGS about
 * single names or URLs, the rest counted; general ones always kept, first.
 */

/** At most this many warnings about names or URLs are kept; the rest are counted. */
const MAX_ITEM_WARNINGS = 20;
export class Warnings {
  readonly list: string[] = [];
  private dropped = 0;
  add(message: string): void {
    if (this.list.length < MAX_ITEM_WARNINGS) this.list.push(message);
    else this.dropped++;
  }
  /** Always kept (not subject to the cap). */
  addGeneral(message: string): void {
    this.list.unshift(message);
  }
  done(): string[] {
    if (this.dropped > 0) this.list.push(`${this.dropped} more warning(s) like the above`);
    return this.list;
  }
}
