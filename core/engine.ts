import { z } from "zod";

/** The database engines Rewind backs up. Their differences live behind the host agent's Engine. */
export const EngineName = z.enum(["mariadb", "mysql"]);
export type EngineName = z.infer<typeof EngineName>;
