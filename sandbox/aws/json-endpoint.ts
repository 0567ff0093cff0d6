import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { AccessDenied, type IamPrincipal, type SandboxIam } from "./iam.js";
import type { RequestCounts } from "./request-counts.js";

/** An error an AWS JSON API returns as `{"__type", "message"}` with status 400. */
export class AwsApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/** The access key id a SigV4-signed request names (`Credential=AKID/date/region/service/aws4_request`). */
export function signingAccessKey(
  headers: http.IncomingHttpHeaders,
  query?: URLSearchParams,
): string | undefined {
  const header = /Credential=([^/,\s]+)\//.exec(String(headers.authorization ?? ""))?.[1];
  return header ?? query?.get("X-Amz-Credential")?.split("/")[0];
}

/**
 * Who signed a request to a JSON service: undefined when IAM is off, else the principal of the
 * access key, or the error AWS gives an unknown key.
 */
export function jsonCaller(
  iam: SandboxIam | undefined,
  accessKeyId: string | undefined,
): IamPrincipal | undefined {
  if (!iam?.enforcing) return undefined;
  const principal = iam.principalFor(accessKeyId);
  if (!principal)
    throw new AwsApiError(
      "UnrecognizedClientException",
      "The security token included in the request is invalid.",
    );
  return principal;
}

/**
 * A loopback endpoint speaking an AWS JSON protocol (the operation in `x-amz-target`, JSON in and
 * out), enough for the SDK clients the sandbox points at its stand-ins. Each answer learns which
 * access key signed the request; an `AccessDenied` answers as AWS does (`AccessDeniedException`).
 */
export async function serveAwsJson(options: {
  /** `AmazonSSM.`, `AWSStepFunctions.`, `TrentService.`, `secretsmanager.` */
  readonly targetPrefix: string;
  /** `application/x-amz-json-1.1` (SSM, KMS, Secrets Manager) or `-1.0` (Step Functions). */
  readonly contentType: string;
  /** The service's name in request counts (`SSM`, `KMS`, …). */
  readonly service: string;
  readonly counts?: RequestCounts;
  readonly answer: (
    operation: string,
    input: Record<string, unknown>,
    accessKeyId: string | undefined,
  ) => unknown | Promise<unknown>;
}): Promise<{ server: http.Server; endpoint: string }> {
  const server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString();
    });
    request.on("end", async () => {
      const reply = (status: number, payload: unknown) => {
        response.writeHead(status, { "content-type": options.contentType });
        response.end(JSON.stringify(payload));
      };
      const operation = String(request.headers["x-amz-target"] ?? "").replace(options.targetPrefix, "");
      options.counts?.add(options.service, operation);
      try {
        reply(
          200,
          await options.answer(operation, JSON.parse(body || "{}"), signingAccessKey(request.headers)),
        );
      } catch (error) {
        if (error instanceof AwsApiError) reply(400, { __type: error.type, message: error.message });
        else if (error instanceof AccessDenied)
          reply(400, { __type: "AccessDeniedException", message: error.message });
        else reply(500, { __type: "InternalServerError", message: (error as Error).message });
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
