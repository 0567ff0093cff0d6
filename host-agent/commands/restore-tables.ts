/**
 * `rewind-agent restore --tables …`: the table restore (host-agent/restore/tables.ts: a scratch
 * restore, then the table copy into the live primary).
 */
export {
  parseTableSelectors,
  restoreTables,
  type TableReport,
  type TablesOptions,
} from "../restore/tables.js";
