import { ErrorNames, RewindError } from "../errors.js";

/** A binary log that cannot be read: damaged, truncated, or of a kind Rewind does not know. */
export class BinlogError extends RewindError {
  constructor(message: string) {
    super(ErrorNames.binlogInvalid, message);
  }
}
