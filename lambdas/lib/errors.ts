import { ErrorNames } from "../../core/errors.js";

/**
 * Errors the state machines match by name in Retry/Catch. Each message says what happened and
 * what to do; Step Functions shows it as the cause in the console.
 */
export class InputInvalid extends Error {
  override readonly name = ErrorNames.inputInvalid;
}

export class UnknownCluster extends Error {
  override readonly name = ErrorNames.unknownCluster;
}

export class NoEligibleSource extends Error {
  override readonly name = ErrorNames.noEligibleSource;
}

/* core/ throws RewindError with the names in ErrorNames (RestorePlanRefused, VerifyFailed, …). */
