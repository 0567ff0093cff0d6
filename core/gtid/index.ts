import type { EngineName } from "../engine.js";
import type { GtidModel } from "./gtid-set.js";
import { mariadbGtids } from "./mariadb.js";
import { mysqlGtids } from "./mysql.js";

export type { GtidModel, GtidSet } from "./gtid-set.js";

/** The GTID syntax and arithmetic of `engine`: chosen from a manifest's engine, never guessed. */
export function gtidModel(engine: EngineName): GtidModel {
  return engine === "mysql" ? mysqlGtids : mariadbGtids;
}

/** Whether `text` is a GTID of either engine (for input checks made before the engine is known). */
export function isAnyGtid(text: string): boolean {
  return mariadbGtids.isGtid(text) || mysqlGtids.isGtid(text);
}
