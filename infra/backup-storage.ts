import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { acknowledge } from "./nag.js";

export interface BackupStorageProps {
  /**
   * Object Lock's default retention on every object version: the mode and how many days. The
   * bucket has Object Lock enabled either way.
   * @default - no default retention
   */
  readonly objectLock?: { readonly mode: "governance" | "compliance"; readonly days: number };
  /**
   * Move objects to STANDARD_IA after this many days.
   * @default - no transition
   */
  readonly infrequentAccessAfterDays?: number;
  /**
   * Move objects to GLACIER_IR after this many days.
   * @default - no transition
   */
  readonly glacierInstantRetrievalAfterDays?: number;
}

/**
 * Where backups and binlogs live: a KMS key (the agent's data key wrapping) and a bucket that only
 * speaks TLS, encrypts with that key, keeps versions, blocks public access and aborts multipart
 * uploads that a failed agent left behind.
 */
export class BackupStorage extends Construct {
  readonly key: kms.Key;
  readonly bucket: s3.Bucket;
  /** Server access logs of the backup bucket: who read or deleted which backup, and when. */
  readonly accessLogs: s3.Bucket;

  constructor(scope: Construct, id: string, props: BackupStorageProps = {}) {
    super(scope, id);
    if (
      props.infrequentAccessAfterDays !== undefined &&
      props.glacierInstantRetrievalAfterDays !== undefined &&
      props.glacierInstantRetrievalAfterDays <= props.infrequentAccessAfterDays
    ) {
      throw new Error(
        "glacierInstantRetrievalAfterDays must be later than infrequentAccessAfterDays; raise it or drop one transition",
      );
    }
    this.key = new kms.Key(this, "Key", {
      description: "Rewind backups and binlogs",
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const transitions: s3.Transition[] = [];
    if (props.infrequentAccessAfterDays !== undefined) {
      transitions.push({
        storageClass: s3.StorageClass.INFREQUENT_ACCESS,
        transitionAfter: Duration.days(props.infrequentAccessAfterDays),
      });
    }
    if (props.glacierInstantRetrievalAfterDays !== undefined) {
      transitions.push({
        storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
        transitionAfter: Duration.days(props.glacierInstantRetrievalAfterDays),
      });
    }
    this.accessLogs = new s3.Bucket(this, "AccessLogs", {
      // S3 delivers server access logs only to SSE-S3 buckets.
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ id: "expire-access-logs", expiration: Duration.days(400) }],
    });
    acknowledge(
      this.accessLogs.node.defaultChild!,
      "AwsSolutions-S1",
      "This is the access log bucket of the backup bucket; logging it to itself or a third bucket adds nothing",
    );
    this.bucket = new s3.Bucket(this, "Bucket", {
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: "backups/",
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      bucketKeyEnabled: true,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      // Always enabled: CloudFormation replaces a bucket whose ObjectLockEnabled changes
      // (AWS::S3::Bucket, "Update requires: Replacement"), so turning the lock on later would
      // create an empty bucket. Without a mode there is just no default retention.
      objectLockEnabled: true,
      ...(props.objectLock
        ? {
            objectLockDefaultRetention: s3.ObjectLockRetention[props.objectLock.mode](
              Duration.days(props.objectLock.days),
            ),
          }
        : {}),
      lifecycleRules: [
        { id: "abort-incomplete-multipart-uploads", abortIncompleteMultipartUploadAfter: Duration.days(2) },
        // Retention deletes current versions, which leaves them noncurrent behind a delete marker:
        // they go a day later (a locked version only once its lock lapses: S3 lifecycle never
        // removes a locked version), and the markers left with no version behind them go too.
        { id: "expire-noncurrent-versions", noncurrentVersionExpiration: Duration.days(1) },
        { id: "expired-delete-markers", expiredObjectDeleteMarker: true },
        ...(transitions.length > 0 ? [{ id: "storage-class-transitions", transitions }] : []),
      ],
    });
    // Every object is encrypted under this key: a request for other encryption is refused, and
    // one that names none gets the bucket's default (SSE-KMS with this key).
    const objects = this.bucket.arnForObjects("*");
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "DenyOtherEncryption",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ["s3:PutObject"],
        resources: [objects],
        // Only a request that names an encryption: "…IfExists" would be true for one that names
        // none, and deny every upload relying on the bucket's default (which is this key).
        conditions: {
          Null: { "s3:x-amz-server-side-encryption": "false" },
          StringNotEquals: { "s3:x-amz-server-side-encryption": "aws:kms" },
        },
      }),
    );
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "DenyOtherKeys",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ["s3:PutObject"],
        resources: [objects],
        conditions: {
          Null: { "s3:x-amz-server-side-encryption-aws-kms-key-id": "false" },
          StringNotEquals: { "s3:x-amz-server-side-encryption-aws-kms-key-id": this.key.keyArn },
        },
      }),
    );
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "DenyCustomerKeys",
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ["s3:PutObject"],
        resources: [objects],
        conditions: { Null: { "s3:x-amz-server-side-encryption-customer-algorithm": "false" } },
      }),
    );
  }
}
