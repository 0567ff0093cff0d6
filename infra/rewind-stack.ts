import { Stack, type StackProps } from "aws-cdk-lib";
import * as s3assets from "aws-cdk-lib/aws-s3-assets";
import type { Construct } from "constructs";
import { AgentDocument } from "./agent-document.js";
import { BackupStorage } from "./backup-storage.js";
import type { RewindConfig } from "./config.js";
import { DatabaseHostPolicy } from "./database-host-policy.js";

export interface RewindStackProps extends StackProps {
  readonly config: RewindConfig;
  /** Path of the bundled host agent (built before synth). */
  readonly agentBundle: string;
}

/** Everything one `cdk deploy` creates (DESIGN §6). So far: storage, the agent document, host policies. */
export class RewindStack extends Stack {
  readonly storage: BackupStorage;
  readonly agentDocument: AgentDocument;
  /** One per cluster, for the instance role of that cluster's database hosts. */
  readonly hostPolicies: DatabaseHostPolicy[];

  constructor(scope: Construct, id: string, props: RewindStackProps) {
    super(scope, id, props);
    this.storage = new BackupStorage(this, "Storage", props.config.bucket);
    const agentAsset = new s3assets.Asset(this, "AgentBundle", { path: props.agentBundle });
    this.agentDocument = new AgentDocument(this, "AgentDocument", { agentAsset });
    this.hostPolicies = props.config.clusters.map(
      (cluster) =>
        new DatabaseHostPolicy(this, `HostPolicy-${cluster.name}`, {
          cluster: cluster.name,
          bucket: this.storage.bucket,
          key: this.storage.key,
          agentAsset,
        }),
    );
  }
}
