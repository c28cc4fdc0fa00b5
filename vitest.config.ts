import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // CI asks for a JSON report as well, to print one plain "N passed, N failed" line.
    reporters: process.env['TDL_TEST_REPORT']
      ? ['default', ['json', { outputFile: process.env['TDL_TEST_REPORT'] }]]
      : ['default'],
    fileParallelism: true,
  },
});
