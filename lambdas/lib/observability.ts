import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";

/** One structured logger and one metrics emitter (EMF) for every Rewind Lambda. */
export const logger = new Logger({ serviceName: "rewind" });
// The stack sets the namespace (`Rewind`, or `Rewind/<deployment>` for a second deployment).
export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "Rewind",
  serviceName: "rewind",
});
