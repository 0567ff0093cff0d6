import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";

/** One structured logger and one metrics emitter (EMF) for every Rewind Lambda. */
export const logger = new Logger({ serviceName: "rewind" });
export const metrics = new Metrics({ namespace: "Rewind", serviceName: "rewind" });
