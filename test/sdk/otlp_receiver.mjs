// An OTLP/HTTP trace receiver for test/integration/test_tracing.py, decoding
// what sluice exports with an implementation independent of sluice: the
// protobufjs code that @opentelemetry/otlp-transformer generates from the
// official opentelemetry-proto files (ExportTraceServiceRequest.decode).
//
//   node otlp_receiver.mjs PORT OUT.jsonl
//
// Each POST /v1/traces appends one {"type":"export", headers, spans:[...]}
// line (ids as lowercase hex, attributes as a flat object; arrays as arrays)
// or {"type":"error", message} when the body does not decode. The behaviour
// is set by POST /_ctl with {"mode":"ok"|"fail"|"slow", "status":N, "delay_ms":N}.
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";

const require = createRequire(import.meta.url);
const root = require("@opentelemetry/otlp-transformer/build/src/generated/root.js");
const Req = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const Resp = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;

const [port, out] = [Number(process.argv[2]), process.argv[3]];
let ctl = { mode: "ok", status: 503, delay_ms: 0 };

const hex = (b) => (b && b.length ? Buffer.from(b).toString("hex") : "");

function anyValue(v) {
  if (v == null) return null;
  if (v.stringValue != null && v.stringValue !== "") return v.stringValue;
  if (v.boolValue != null && v.value === "boolValue") return v.boolValue;
  if (v.intValue != null && v.value === "intValue") return Number(v.intValue);
  if (v.doubleValue != null && v.value === "doubleValue") return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values || []).map(anyValue);
  if (v.value === "stringValue") return v.stringValue;
  return null;
}

function attrs(list) {
  const o = {};
  for (const kv of list || []) o[kv.key] = anyValue(kv.value);
  return o;
}

function decode(body) {
  const msg = Req.decode(body);
  const spans = [];
  for (const rs of msg.resourceSpans || []) {
    const resource = attrs(rs.resource && rs.resource.attributes);
    for (const ss of rs.scopeSpans || []) {
      for (const s of ss.spans || []) {
        spans.push({
          traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId),
          traceState: s.traceState || "", name: s.name, kind: s.kind,
          start: String(s.startTimeUnixNano), end: String(s.endTimeUnixNano),
          attributes: attrs(s.attributes), droppedAttributes: s.droppedAttributesCount || 0,
          status: s.status ? { code: s.status.code || 0, message: s.status.message || "" } : null,
          resource, scope: ss.scope ? ss.scope.name : null,
        });
      }
    }
  }
  return spans;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    if (req.url === "/_ctl") {
      ctl = { ...ctl, ...JSON.parse(body.toString() || "{}") };
      res.end("{}");
      return;
    }
    if (req.method !== "POST" || req.url !== "/v1/traces") {
      res.statusCode = 404;
      res.end();
      return;
    }
    const answer = () => {
      if (ctl.mode === "fail") {
        fs.appendFileSync(out, JSON.stringify({ type: "refused", status: ctl.status }) + "\n");
        res.statusCode = ctl.status;
        res.end();
        return;
      }
      let line;
      try {
        line = { type: "export", headers: req.headers, spans: decode(body) };
      } catch (e) {
        line = { type: "error", message: String(e) };
      }
      fs.appendFileSync(out, JSON.stringify(line) + "\n");
      res.setHeader("Content-Type", "application/x-protobuf");
      res.end(Buffer.from(Resp.encode(Resp.create({})).finish()));
    };
    if (ctl.mode === "slow") setTimeout(answer, ctl.delay_ms);
    else answer();
  });
});
server.listen(port, "127.0.0.1", () => console.log("listening " + port));
