// A Node client of the universal WebSocket session (protocol.md §5, §6), run by tests/test_ws_node.py.
//
//   node client.mjs <ws url> <token> [<universal request JSON>]
//
// Connects with the token in the `cf-aig-authorization` header (Node can set headers, unlike a
// browser), sends one universal.create and prints one JSON line to stdout:
//   {"frames": [every frame of the event, parsed], "protocol": <selected subprotocol>}
// then closes with 1000. A refused handshake prints {"refused": <HTTP status>, "body": <text>}.
// Exit status: 0 on a terminal frame or a refusal, 1 on anything else (error, timeout).
import WebSocket from "ws";

const [url, token, requestJson] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node client.mjs <ws url> <token> [<request JSON>]");
  process.exit(2);
}
const request = requestJson
  ? JSON.parse(requestJson)
  : {
      eventId: "node-1",
      provider: "openai",
      endpoint: "chat/completions",
      headers: { Authorization: "Bearer sk-node", "Content-Type": "application/json" },
      query: { model: "gpt-4o-mini", messages: [{ role: "user", content: "say hello please" }] },
    };
const eventId = (Array.isArray(request) ? request : [request]).find((s) => s.eventId)?.eventId;

const timer = setTimeout(() => {
  console.error("timed out waiting for the answer");
  process.exit(1);
}, 15000);

const ws = new WebSocket(url, { headers: { "cf-aig-authorization": "Bearer " + token } });
const frames = [];

ws.on("unexpected-response", (_req, res) => {
  let body = "";
  res.setEncoding("utf8");
  res.on("data", (chunk) => (body += chunk));
  res.on("end", () => {
    console.log(JSON.stringify({ refused: res.statusCode, body }));
    clearTimeout(timer);
    process.exit(0);
  });
});
ws.on("open", () => ws.send(JSON.stringify({ type: "universal.create", request })));
ws.on("message", (data, isBinary) => {
  if (isBinary) {
    console.error("unexpected binary frame");
    process.exit(1);
  }
  const frame = JSON.parse(data.toString("utf8"));
  if (eventId !== undefined && frame.metadata?.eventId !== eventId) return;
  frames.push(frame);
  const terminal =
    frame.type === "universal.done" || (frame.type === "universal.created" && "response" in frame);
  if (terminal) {
    console.log(JSON.stringify({ frames, protocol: ws.protocol }));
    clearTimeout(timer);
    ws.close(1000);
  }
});
ws.on("error", (err) => {
  console.error("websocket error: " + err.message);
  process.exit(1);
});
