import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { run, track, waitFor } from "../processes.js";
import type { MariaDbServer } from "./mariadb-server.js";

export const WORKLOAD_DB = "rewind_test";

/**
 * Static tables of about `megabytes` MB: sysbench's tables when `sysbench` is installed and
 * asked for, else a table filled by SQL with half-compressible rows (hex digests, like sysbench's).
 */
export async function loadDataset(
  server: MariaDbServer,
  { megabytes, useSysbench = false }: { megabytes: number; useSysbench?: boolean },
): Promise<void> {
  await server.query(`CREATE DATABASE IF NOT EXISTS ${WORKLOAD_DB}`);
  if (useSysbench && (await hasCommand("sysbench"))) {
    const tables = 4;
    const rowsPerTable = Math.ceil((megabytes * 1024 * 1024) / 230 / tables);
    await run("sysbench", [
      "oltp_read_write",
      `--mysql-socket=${server.socket}`,
      "--mysql-user=root",
      `--mysql-db=${WORKLOAD_DB}`,
      `--tables=${tables}`,
      `--table-size=${rowsPerTable}`,
      "--threads=2",
      "prepare",
    ]);
    return;
  }
  // Each row is ~1 KB; rows are added by doubling, the way a quick benchmark fill usually is.
  const rows = Math.max(1, Math.ceil((megabytes * 1024 * 1024) / 1100));
  await server.query(
    `CREATE TABLE ${WORKLOAD_DB}.dataset (id BIGINT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL, c VARCHAR(1024) NOT NULL, KEY (k)) ENGINE=InnoDB;
     INSERT INTO ${WORKLOAD_DB}.dataset (k, c) VALUES (1, REPEAT(SHA2(RAND(), 256), 15));`,
  );
  let count = 1;
  while (count < rows) {
    const batch = Math.min(count, rows - count);
    await server.query(
      `INSERT INTO ${WORKLOAD_DB}.dataset (k, c) SELECT FLOOR(RAND()*1000000), CONCAT(SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512)) FROM ${WORKLOAD_DB}.dataset LIMIT ${batch}`,
    );
    count += batch;
  }
}

async function hasCommand(command: string): Promise<boolean> {
  try {
    await run("sh", ["-c", `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

/**
 * A single-writer workload: transaction i inserts row id i with a payload derived from i, one
 * GTID per transaction, so the rows a restore must contain can be computed from a GTID position.
 */
export class WriteWorkload {
  private constructor(
    private readonly child: ChildProcess,
    private readonly server: MariaDbServer,
    /**
     * Row i is written by the transaction with GTID sequence number `gtidSeqBase + i`, as long
     * as nothing else writes to the server while the workload runs.
     */
    readonly gtidSeqBase: number,
    private readonly connectionId: number,
  ) {}

  static readonly table = `${WORKLOAD_DB}.writes`;

  static async start(server: MariaDbServer, { pauseMs = 2 } = {}): Promise<WriteWorkload> {
    await server.query(
      `CREATE DATABASE IF NOT EXISTS ${WORKLOAD_DB};
       CREATE TABLE IF NOT EXISTS ${WriteWorkload.table} (id BIGINT PRIMARY KEY, payload CHAR(64) NOT NULL, written_at DATETIME(6) NOT NULL) ENGINE=InnoDB;`,
    );
    // A stored procedure keeps the loop inside the server; the client only waits.
    await server.query(
      `DELIMITER //
       CREATE OR REPLACE PROCEDURE ${WORKLOAD_DB}.write_loop(first BIGINT)
       BEGIN
         DECLARE i BIGINT DEFAULT first;
         LOOP
           INSERT INTO ${WriteWorkload.table} VALUES (i, SHA2(i, 256), NOW(6));
           SET i = i + 1;
           DO SLEEP(${pauseMs / 1000});
         END LOOP;
       END//
       DELIMITER ;`,
    );
    const next = Number(
      (await server.scalar(`SELECT COALESCE(MAX(id), 0) + 1 FROM ${WriteWorkload.table}`)) ?? 1,
    );
    const seq = gtidSequence(await server.gtidBinlogPos(), server.serverId);
    const child = track(
      spawn(
        "mariadb",
        [
          `--defaults-file=${server.defaultsFile}`,
          "-uroot",
          "--batch",
          "--skip-column-names",
          "--unbuffered",
        ],
        {
          stdio: ["pipe", "pipe", "pipe"],
        },
      ),
    );
    const connectionId = new Promise<number>((resolve) =>
      child.stdout!.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim()))),
    );
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdin!.end(`SELECT CONNECTION_ID();\nCALL ${WORKLOAD_DB}.write_loop(${next});\n`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (child.exitCode !== null)
      throw new Error(`the write workload did not start (exit ${child.exitCode}): ${stderr}`);
    return new WriteWorkload(child, server, seq - (next - 1), await connectionId);
  }

  /**
   * What a server holds of the workload's rows: how many, the highest id, and how many whose
   * payload is not SHA2(id) (0 unless a row was damaged).
   */
  static async rowsOf(server: MariaDbServer): Promise<{ count: number; maxId: number; bad: number }> {
    const [count, maxId, bad] = (
      await server.query(
        `SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(payload <> SHA2(id, 256)), 0) FROM ${WriteWorkload.table}`,
      )
    )[0]!;
    return { count: Number(count), maxId: Number(maxId), bad: Number(bad) };
  }

  /** Stops the loop in the server (a closed client alone would not) and returns the last id written. */
  async stop(): Promise<number> {
    const id = this.connectionId;
    await this.server.query(`KILL ${id}`).catch(() => {});
    // KILL returns before the thread has stopped; it may still commit one more row.
    await waitFor(
      `workload connection ${id} to end`,
      async () =>
        (await this.server.query(`SELECT 1 FROM information_schema.processlist WHERE id = ${id}`)).length ===
        0,
    );
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, "exit");
      this.child.kill("SIGKILL");
      await exited;
    }
    return Number((await this.server.scalar(`SELECT COALESCE(MAX(id), 0) FROM ${WriteWorkload.table}`)) ?? 0);
  }
}

/** The sequence number of domain 0 in a MariaDB GTID position such as `0-11-687`. */
export function gtidSequence(position: string, serverId: number): number {
  if (position === "") return 0;
  const match = position
    .split(",")
    .map((gtid) => gtid.trim().split("-"))
    .find(([domain]) => domain === "0");
  if (!match || Number(match[1]) !== serverId) {
    throw new Error(`GTID position ${position} has no domain-0 GTID from server ${serverId}`);
  }
  return Number(match[2]);
}
