import { type CfnElement, Stack, Validations } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

/**
 * A cdk-nag (AwsSolutions) finding accepted on purpose, on the narrowest construct that has it,
 * with the reason. IAM5 findings name the exact wildcard resource: `AwsSolutions-IAM5[Resource::*]`.
 */
export function acknowledge(construct: IConstruct, id: string, reason: string): void {
  Validations.of(construct).acknowledge({ id, reason });
}

/** The default policy CDK attaches to a role it created for a construct (state machines, Lambdas). */
export function defaultPolicyOf(role: IConstruct): IConstruct {
  return role.node.findChild("DefaultPolicy").node.findChild("Resource");
}

/** The instance ARNs of SendCommand: any instance, narrowed by the rewind:cluster tag condition. */
export const INSTANCE_WILDCARD =
  "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]";
export const INSTANCE_WILDCARD_REASON =
  "Database hosts come and go; ssm:SendCommand is limited to instances that carry the deployment's host tag (<deployment>:cluster) by an ssm:resourceTag condition, and the host refuses a request for another cluster";

/** The IAM5 finding id of a wildcard under a resource's ARN, as cdk-nag spells it: `<LogicalId.Arn>/x/*`. */
export function arnWildcard(resource: IConstruct, suffix: string): string {
  const element = (resource.node.defaultChild ?? resource) as CfnElement;
  return `AwsSolutions-IAM5[Resource::<${Stack.of(resource).resolve(element.logicalId)}.Arn>${suffix}]`;
}
