import type { EngineName } from "../../core/engine.js";
import type { Engine } from "./engine.js";
import { mariadbEngine } from "./mariadb.js";
import { mysqlEngine } from "./mysql.js";

export function engineFor(name: EngineName): Engine {
  return name === "mariadb" ? mariadbEngine : mysqlEngine;
}
