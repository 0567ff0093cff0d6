import type { Template } from "../state-machine-definitions.js";
import type { S3GateRules } from "./s3-gate.js";
import type { LifecycleRules } from "./s3-versions.js";

interface BucketProperties {
  readonly VersioningConfiguration?: { readonly Status?: string };
  readonly ObjectLockConfiguration?: {
    readonly Rule?: { readonly DefaultRetention?: { readonly Mode?: string; readonly Days?: number } };
  };
  readonly LifecycleConfiguration?: {
    readonly Rules?: readonly {
      readonly Status?: string;
      readonly AbortIncompleteMultipartUpload?: { readonly DaysAfterInitiation?: number };
      readonly NoncurrentVersionExpiration?: { readonly NoncurrentDays?: number };
      readonly ExpiredObjectDeleteMarker?: boolean;
      readonly Transitions?: readonly { readonly StorageClass: string; readonly TransitionInDays?: number }[];
    }[];
  };
}

/**
 * What the S3 gate enforces of the backup bucket as the template declares it: the default Object
 * Lock retention and the lifecycle rules (AWS::S3::Bucket properties), so the sandbox's bucket
 * behaves as the deployed one would. The gate always models a versioned bucket; a template whose
 * bucket is not versioned is refused.
 */
export function backupBucketRules(
  template: Template,
  bucketLogicalId: string,
): Pick<S3GateRules, "objectLock" | "lifecycle"> {
  const properties = (template.Resources[bucketLogicalId]?.Properties ?? {}) as BucketProperties;
  if (properties.VersioningConfiguration?.Status !== "Enabled") {
    throw new Error(
      `the template's bucket ${bucketLogicalId} is not versioned: the S3 stand-in models a versioned bucket, as Object Lock requires`,
    );
  }
  const retention = properties.ObjectLockConfiguration?.Rule?.DefaultRetention;
  const lifecycle: {
    -readonly [K in keyof LifecycleRules]: LifecycleRules[K];
  } = {};
  for (const rule of properties.LifecycleConfiguration?.Rules ?? []) {
    if (rule.Status !== "Enabled") continue;
    const abort = rule.AbortIncompleteMultipartUpload?.DaysAfterInitiation;
    if (abort !== undefined) lifecycle.abortIncompleteDays = abort;
    const noncurrent = rule.NoncurrentVersionExpiration?.NoncurrentDays;
    if (noncurrent !== undefined) lifecycle.noncurrentDays = noncurrent;
    if (rule.ExpiredObjectDeleteMarker) lifecycle.expiredObjectDeleteMarker = true;
    const transitions = (rule.Transitions ?? []).flatMap((transition) =>
      transition.TransitionInDays === undefined
        ? []
        : [{ days: transition.TransitionInDays, storageClass: transition.StorageClass }],
    );
    if (transitions.length > 0) lifecycle.transitions = [...(lifecycle.transitions ?? []), ...transitions];
  }
  return {
    ...(retention?.Mode && retention.Days
      ? {
          objectLock: {
            mode: retention.Mode === "COMPLIANCE" ? ("compliance" as const) : ("governance" as const),
            days: retention.Days,
          },
        }
      : {}),
    lifecycle,
  };
}
