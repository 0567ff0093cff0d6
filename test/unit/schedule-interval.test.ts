import { describe, expect, it } from "vitest";
import { lockDaysNeeded, scheduleIntervalDays } from "../../infra/config.js";

describe("the longest gap between full backups, for how long Object Lock must hold", () => {
  it.each([
    ["cron(15 3 * * ? *)", 1],
    ["cron(0 */6 * * ? *)", 1],
    ["cron(0 2 ? * SUN *)", 7],
    ["cron(0 2 ? * MON,THU *)", 4],
    ["cron(0 2 ? * 2-6 *)", 3],
    ["cron(0 2 ? * MON-FRI *)", 3],
    ["cron(0 2 1 * ? *)", 31],
    ["cron(0 2 ? * 6#3 *)", 7],
    ["rate(12 hours)", 1],
    ["rate(3 days)", 3],
  ])("%s: %i day(s)", (expression, days) => {
    expect(scheduleIntervalDays(expression)).toBe(days);
  });

  it("the lock covers the window, the gap before it and a day", () => {
    expect(lockDaysNeeded(7, "cron(15 3 * * ? *)")).toBe(9);
    expect(lockDaysNeeded(14, "cron(0 2 ? * SUN *)")).toBe(22);
  });
});
