import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";

/** An error an AWS JSON API returns as `{"__type", "message"}` with status 400. */
export class AwsApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A loopback endpoint speaking an AWS JSON protocol (the operation in `x-amz-target`, JSON in and
 * out), enough for the SDK clients the sandbox points at its stand-ins.
 */
export async function serveAwsJson(options: {
  /** `AmazonSSM.`, `AWSStepFunctions.` */
  readonly targetPrefix: string;
  /** `application/x-amz-json-1.1` (SSM) or `-1.0` (Step Functions). */
  readonly contentType: string;
  readonly answer: (operation: string, input: Record<string, unknown>) => unknown;
}): Promise<{ server: http.Server; endpoint: string }> {
  const server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString();
    });
    request.on("end", () => {
      const reply = (status: number, payload: unknown) => {
        response.writeHead(status, { "content-type": options.contentType });
        response.end(JSON.stringify(payload));
      };
      const operation = String(request.headers["x-amz-target"] ?? "").replace(options.targetPrefix, "");
      try {
        reply(200, options.answer(operation, JSON.parse(body || "{}")));
      } catch (error) {
        if (error instanceof AwsApiError) reply(400, { __type: error.type, message: error.message });
        else reply(500, { __type: "InternalServerError", message: (error as Error).message });
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
