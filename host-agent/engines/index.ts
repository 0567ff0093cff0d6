import type { Engine } from "./engine.js";
import { mariadbEngine } from "./mariadb.js";
import { mysqlEngine } from "./mysql.js";

export function engineFor(name: "mariadb" | "mysql"): Engine {
  return name === "mariadb" ? mariadbEngine : mysqlEngine;
}
