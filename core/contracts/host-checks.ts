import { z } from "zod";

/** One thing a host needs, as `rewind-agent doctor` checked it. */
export const DoctorCheckSchema = z.object({
  check: z.string(),
  ok: z.boolean(),
  /** What was found. */
  found: z.string(),
  /** What to do, when it failed. */
  fix: z.string().optional(),
});
export type DoctorCheck = z.infer<typeof DoctorCheckSchema>;

/**
 * What the install association's doctor found on one host, at `<cluster>/hosts/<host>/doctor.json`
 * (core/layout.ts `hostChecksKey`), rewritten every run (30 minutes): `list` shows the hosts
 * that fail, and those whose record has gone stale.
 */
export const HostChecksSchema = z.object({
  host: z.string(),
  checkedAt: z.string(),
  agentVersion: z.string(),
  ok: z.boolean(),
  /** The server's server_id, so the next host's doctor can tell it is not unique in the cluster. */
  serverId: z.number().int().nullable().default(null),
  checks: z.array(DoctorCheckSchema),
});
export type HostChecks = z.infer<typeof HostChecksSchema>;

/** The association runs every 30 minutes: a record much older means it no longer runs there. */
export const HOST_CHECKS_STALE_MS = 2 * 60 * 60 * 1000;
