/**
 * Errors the state machines match by name in Retry/Catch. Each message says what happened and
 * what to do; Step Functions shows it as the cause in the console.
 */
export class InputInvalid extends Error {
  override readonly name = "InputInvalid";
}

export class UnknownCluster extends Error {
  override readonly name = "UnknownCluster";
}

export class NoEligibleSource extends Error {
  override readonly name = "NoEligibleSource";
}

/* core/ throws RewindError with the names in ErrorNames (RestorePlanRefused, VerifyFailed, …). */
