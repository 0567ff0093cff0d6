/**
 * One warm Lambda execution environment of the sandbox: a process of its own with the function's
 * environment (its variables from the template, its role's credentials), running the real handler
 * module for each event its parent sends over IPC.
 */
const folder = process.argv[2];
if (!folder || !process.send) {
  console.error("usage: run by LocalLambda with an IPC channel: lambda-runtime.ts <handler folder>");
  process.exit(2);
}
const { handler } = (await import(`../../lambdas/${folder}/handler.js`)) as {
  handler: (event: unknown) => Promise<unknown>;
};

process.on("message", async (message: { id: number; event: unknown }) => {
  try {
    const result = await handler(message.event);
    process.send!({ id: message.id, ok: true, result });
  } catch (error) {
    const failure = error as Error;
    process.send!({ id: message.id, ok: false, name: failure.name, message: failure.message });
  }
});
process.send({ ready: true });
