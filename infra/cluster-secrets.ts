import { RemovalPolicy } from "aws-cdk-lib";
import type * as kms from "aws-cdk-lib/aws-kms";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { acknowledge } from "./nag.js";

/**
 * The database users the agent reads as `rewind/<cluster>/<user>`: `backup` (secrets.backup),
 * `repl` (secrets.repl, a replica's source) and `root` (secrets.restore where the socket's root
 * cannot log in, as on MySQL). A `dba` secret that nothing read was dropped: stacks created before
 * keep it in the account (RETAIN), unmanaged.
 */
export const CLUSTER_USERS = ["root", "repl", "backup"] as const;

export interface ClusterSecretsProps {
  readonly cluster: string;
  /** The key the hosts already use for backups; they decrypt their secrets with it. */
  readonly key: kms.IKey;
}

/**
 * One secret per cluster user, `{"username","password"}` with a generated password. Retained on
 * stack deletion: the servers keep using these passwords.
 */
export class ClusterSecrets extends Construct {
  readonly secrets: Record<(typeof CLUSTER_USERS)[number], secretsmanager.Secret>;

  constructor(scope: Construct, id: string, props: ClusterSecretsProps) {
    super(scope, id);
    const make = (user: (typeof CLUSTER_USERS)[number]) => {
      const secret = new secretsmanager.Secret(this, user, {
        secretName: `rewind/${props.cluster}/${user}`,
        description: `MariaDB/MySQL user ${user} of cluster ${props.cluster} (Rewind)`,
        encryptionKey: props.key,
        removalPolicy: RemovalPolicy.RETAIN,
        generateSecretString: {
          secretStringTemplate: JSON.stringify({ username: user === "backup" ? "rewind_backup" : user }),
          generateStringKey: "password",
          passwordLength: 32,
          // Characters that option files and shells treat specially.
          excludeCharacters: "\"'`\\/@#;$ ",
        },
      });
      acknowledge(
        secret.node.defaultChild!,
        "AwsSolutions-SMG4",
        "Rotating these passwords must also change them on every server of the cluster at once, which Rewind cannot do yet (README: not built yet), so rotation stays manual until then",
      );
      return secret;
    };
    this.secrets = { root: make("root"), repl: make("repl"), backup: make("backup") };
  }
}
