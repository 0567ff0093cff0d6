import { defineConfig } from "vitest/config";

/**
 * Four tiers, each a project: `npx vitest run --project unit` runs the pure tests in seconds;
 * `npm test` runs them all. Integration and end-to-end tests start real MariaDB servers; on two
 * cores they run one file at a time.
 */
const tier = (name: string, groupOrder: number) => ({
  extends: true as const,
  test: { name, include: [`test/${name}/**/*.test.ts`], sequence: { groupOrder } },
});

export default defineConfig({
  test: {
    globalSetup: ["test/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    reporters: ["default"],
    projects: [
      // Projects would run side by side; groupOrder runs them one after another, fastest first.
      tier("unit", 0),
      tier("infra", 1),
      tier("integration", 2),
      tier("e2e", 3),
    ],
  },
});
