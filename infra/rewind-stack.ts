import { Stack, type StackProps } from "aws-cdk-lib";
import * as s3assets from "aws-cdk-lib/aws-s3-assets";
import type { Construct } from "constructs";
import { AgentDocument } from "./agent-document.js";
import { BackupStorage } from "./backup-storage.js";
import type { RewindConfig } from "./config.js";

export interface RewindStackProps extends StackProps {
  readonly config: RewindConfig;
  /** Path of the bundled host agent (built before synth). */
  readonly agentBundle: string;
}

/** Everything one `cdk deploy` creates (DESIGN §6). Storage and the agent document so far. */
export class RewindStack extends Stack {
  readonly storage: BackupStorage;
  readonly agentDocument: AgentDocument;

  constructor(scope: Construct, id: string, props: RewindStackProps) {
    super(scope, id, props);
    this.storage = new BackupStorage(this, "Storage", props.config.bucket);
    const agentAsset = new s3assets.Asset(this, "AgentBundle", { path: props.agentBundle });
    this.agentDocument = new AgentDocument(this, "AgentDocument", { agentAsset });
  }
}
