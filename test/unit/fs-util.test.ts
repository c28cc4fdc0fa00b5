import { describe, expect, it } from 'vitest';
import { eachLimited } from '../../src/storage/fs-util.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('eachLimited', () => {
  it('runs every item, never more than the limit at once', async () => {
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    await eachLimited([...Array(50).keys()], 4, async (i) => {
      running++;
      most = Math.max(most, running);
      await tick();
      seen.push(i);
      running--;
    });
    expect(most).toBe(4);
    expect(seen.sort((a, b) => a - b)).toEqual([...Array(50).keys()]);
  });

  it('starts nothing new after a failure and throws the first one', async () => {
    const started: number[] = [];
    const run = eachLimited([...Array(20).keys()], 2, async (i) => {
      started.push(i);
      await tick();
      if (i === 3) throw new Error('three');
      if (i === 4) throw new Error('four');
    });
    await expect(run).rejects.toThrow('three');
    expect(started.length).toBeLessThan(8);
  });

  it('does nothing for no items', async () => {
    await eachLimited([], 4, () => Promise.reject(new Error('never')));
  });
});
