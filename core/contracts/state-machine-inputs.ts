import { z } from "zod";
import { BACKUP_ID } from "../backup-id.js";
import { isAnyGtid } from "../gtid/index.js";
import { HISTORY_ID } from "../history.js";
import { CLUSTER_NAME } from "../layout.js";

/**
 * The small JSON documents operators type into the Step Functions console (DESIGN §5), and the
 * shapes the state machines pass between steps. Bad input fails fast with the field and the fix.
 */
const cluster = z.string().regex(CLUSTER_NAME, "the cluster name from the Rewind config, such as orders");

export const BackupInput = z
  .object({
    cluster,
    type: z.enum(["full", "incremental"], 'a backup type: "full" or "incremental"').default("full"),
  })
  .strict();
export type BackupInput = z.infer<typeof BackupInput>;

export const RestoreInput = z
  .object({
    cluster,
    targetInstanceId: z
      .string()
      .regex(
        /^(i|mi)-[0-9a-f]{8,17}$/,
        "the EC2 instance id of the host to restore onto, such as i-0abc1234def567890",
      ),
    pointInTime: z
      .string()
      .regex(
        /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/,
        "an ISO 8601 time with a zone, such as 2026-11-21T10:15:00Z",
      )
      .optional(),
    gtid: z
      .string()
      .refine(
        isAnyGtid,
        "a GTID: on MariaDB domain-server-sequence such as 0-1-1042, on MySQL uuid:N such as 3e11fa47-71ca-11e1-9e33-c80aa9429562:23",
      )
      .optional(),
    backupId: z.string().regex(BACKUP_ID, "a backup id such as 20261121T031500Z-full-db1").optional(),
    /** The newest point the shipped binlogs reach (restore drills). */
    latest: z.literal(true).optional(),
    mode: z.enum(["replace", "replica", "scratch", "tables"]).default("replace"),
    /** Mode tables: `db.table` or `db.*`, copied into the live primary on targetInstanceId. */
    tables: z
      .array(
        z
          .string()
          .regex(/^[A-Za-z0-9_$]{1,64}\.([A-Za-z0-9_$]{1,64}|\*)$/, "db.table or db.*, such as shop.orders"),
      )
      .min(1)
      .max(100)
      .optional(),
    /** Mode tables: the restored tables' names end in this (default `_restored_<time>`). */
    as: z
      .string()
      .regex(/^[A-Za-z0-9_$]{1,40}$/, "1–40 letters, digits, _ or $, such as _undo")
      .optional(),
    /** Mode tables: recreate dropped tables under their names and swap existing ones in. */
    replace: z.boolean().default(false),
    datadir: z
      .string()
      .regex(/^\/[A-Za-z0-9._/-]{1,200}$/, "an absolute path such as /var/lib/mysql")
      .default("/var/lib/mysql"),
    /** `host:port` of the primary, for mode replica. */
    primary: z
      .string()
      .regex(/^[A-Za-z0-9.-]{1,253}:\d{1,5}$/, "host:port of the primary, such as 10.0.1.12:3306")
      .optional(),
    dryRun: z.boolean().default(false),
    /**
     * Modes replace and replica: the restored server becomes the writable primary and starts a
     * new history (core/history). Without it, a restored server comes up read-only.
     */
    promote: z.boolean().default(false),
    /** Resolve the target on this history (forensics on a discarded one); default: the current. */
    history: z
      .string()
      .regex(HISTORY_ID, "a history id from `rewind-agent list`, such as 20261206T221500Z-db3, or initial")
      .optional(),
  })
  .strict()
  .superRefine((input, ctx) => {
    if (input.promote && input.mode !== "replace") {
      ctx.addIssue({
        code: "custom",
        path: ["promote"],
        message: `"promote" makes the restored server the writable primary: mode "replace" only (mode ${input.mode} never becomes a primary)`,
      });
    }
    const targets = (["pointInTime", "gtid", "backupId", "latest"] as const).filter(
      (key) => input[key] !== undefined,
    );
    if (targets.length !== 1) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: `give exactly one of pointInTime, gtid, backupId or latest (got ${targets.length === 0 ? "none" : targets.join(", ")})`,
      });
    }
    if (input.mode === "tables" && !input.tables) {
      ctx.addIssue({
        code: "custom",
        path: ["tables"],
        message: 'mode "tables" needs "tables": ["db.table", …]',
      });
    }
    if (input.mode !== "tables" && (input.tables || input.as || input.replace)) {
      ctx.addIssue({
        code: "custom",
        path: ["mode"],
        message: '"tables", "as" and "replace" belong to mode "tables"',
      });
    }
    if (input.mode === "tables" && input.as && input.replace) {
      ctx.addIssue({
        code: "custom",
        path: ["as"],
        message: 'give "as" (restore beside the live tables) or "replace" (restore in their place), not both',
      });
    }
    if (input.mode === "replica" && !input.primary) {
      ctx.addIssue({
        code: "custom",
        path: ["primary"],
        message: 'mode "replica" needs "primary": "host:port"',
      });
    }
  });
export type RestoreInput = z.infer<typeof RestoreInput>;

export const VerifyInput = z
  .object({
    cluster,
    backupId: z.string().min(1),
    /** `<source>/<file>` of binlogs to check as well (a restore plan's). */
    binlogs: z
      .array(
        z.object({
          source: z.string(),
          file: z.string(),
          /** A file still being written: its chunks 0…chunks-1, the newest of them with these hashes. */
          chunks: z.number().int().positive().optional(),
          sha256: z.string().optional(),
          storedSha256: z.string().optional(),
        }),
      )
      .default([]),
  })
  .strict();
export type VerifyInput = z.infer<typeof VerifyInput>;
