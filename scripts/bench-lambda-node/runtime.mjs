// A minimal Lambda Runtime API loop (version 2018-06-01) around handler.mjs, so that the
// Node.js handler starts the same way as the Rust `bootstrap`: as a process that polls
// AWS_LAMBDA_RUNTIME_API for events. Lambda's managed Node.js runtime ships its own loop.
import http from "node:http";

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const base = `/2018-06-01/runtime`;
const agent = new http.Agent({ keepAlive: true });

function request(method, path, body, headers = {}) {
  if (body !== undefined) headers["Content-Length"] = Buffer.byteLength(body);
  return new Promise((resolve, reject) => {
    const [host, port] = api.split(":");
    const req = http.request({ host, port, path: base + path, method, headers, agent }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function postError(path, error) {
  const body = JSON.stringify({ errorType: error.name ?? "Error", errorMessage: String(error.message ?? error) });
  return request("POST", path, body, { "Content-Type": "application/json" });
}

let handler;
try {
  ({ handler } = await import("./handler.mjs"));
} catch (error) {
  await postError("/init/error", error);
  process.exit(1);
}

for (;;) {
  const next = await request("GET", "/invocation/next");
  const requestId = next.headers["lambda-runtime-aws-request-id"];
  try {
    const result = await handler(JSON.parse(next.body));
    await request("POST", `/invocation/${requestId}/response`, JSON.stringify(result), {
      "Content-Type": "application/json",
    });
  } catch (error) {
    await postError(`/invocation/${requestId}/error`, error);
  }
}
