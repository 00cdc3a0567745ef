"""Issue 23 (tracker), traces: OpenTelemetry spans exported over OTLP/HTTP.

What sluice exports is decoded by an independent OTLP implementation: the
protobufjs code @opentelemetry/otlp-transformer generates from the official
opentelemetry-proto files (test/sdk/otlp_receiver.mjs, npm registry), never
sluice's own code. The mock provider records the traceparent each call
carried (GET /_mock/traceparents)."""
import json, os, re, subprocess, threading, time

import sdk
from harness import (Mock, Redis, Sluice, base_config, chat, free_port, post_json, request,
                     wait_port, _procs)

TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$")
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CLIENT_TP = "00-%s-%s-01" % (CLIENT_TRACE, CLIENT_SPAN)
SERVER, CLIENT, INTERNAL = 2, 3, 1


class Receiver:
    """The OTLP receiver on Node.js; spans() returns every span decoded so far."""

    def __init__(self):
        sdk.installed()
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.out = os.path.join(os.environ.get("TMPDIR", "/tmp"), "otlp-%d.jsonl" % self.port)
        open(self.out, "w").close()
        self.proc = subprocess.Popen(["node", os.path.join(sdk.SDK_DIR, "otlp_receiver.mjs"),
                                      str(self.port), self.out], cwd=sdk.TEST_DIR,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _procs.append(self.proc)
        wait_port(self.port)

    def ctl(self, **kw):
        post_json(self.url + "/_ctl", kw)

    def lines(self):
        with open(self.out) as f:
            return [json.loads(l) for l in f if l.strip()]

    def spans(self):
        out = []
        for l in self.lines():
            assert l["type"] != "error", "the official decoder refused an export: " + l["message"]
            out += l.get("spans", [])
        return out

    def wait(self, pred, timeout=8):
        end = time.time() + timeout
        while time.time() < end:
            got = self.spans()
            if pred(got):
                return got
            time.sleep(0.05)
        return self.spans()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        os.unlink(self.out)


def tracing(endpoint, **over):
    t = {"otlp_endpoint": endpoint, "flush_ms": 50, "timeout_ms": 1000}
    t.update(over)
    return t


def trace_of(spans, trace_id):
    return [s for s in spans if s["traceId"] == trace_id]


def metric(s, name):
    body = request("GET", s.url + "/metrics")[2].decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def mock_traces(m):
    return json.loads(request("GET", m.url + "/_mock/traceparents")[2])


def test_span_tree_genai_attributes_and_propagation():
    rcv, m = Receiver(), Mock()
    s = Sluice(base_config(m, cache={"enabled": True},
                           tracing=tracing(rcv.url, service_name="sluice-test",
                                           headers={"x-collector-token": "tok-collector-1234"})))
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat("tell me about tracing"),
                            headers={"traceparent": CLIENT_TP, "tracestate": "vendor=abc,other=1"})
    assert st == 200, j
    # the response names this request's span in the client's trace
    mt = TP.match(h["traceparent"])
    assert mt and mt.group(1) == CLIENT_TRACE and mt.group(2) != CLIENT_SPAN, h["traceparent"]
    server_span = mt.group(2)
    # the access log carries the trace id
    log = s.wait_log(1)
    assert log[0]["trace_id"] == CLIENT_TRACE, log[0]
    # the provider got sluice's attempt span as its parent, and the tracestate
    got = mock_traces(m)
    assert len(got) == 1, got
    up = TP.match(got[0]["traceparent"])
    assert up and up.group(1) == CLIENT_TRACE, got
    assert up.group(2) not in (CLIENT_SPAN, server_span)
    assert got[0]["tracestate"] == "vendor=abc,other=1"
    spans = rcv.wait(lambda sp: len(trace_of(sp, CLIENT_TRACE)) >= 3)
    t = trace_of(spans, CLIENT_TRACE)
    by_id = {x["spanId"]: x for x in t}
    srv = by_id[server_span]
    assert srv["kind"] == SERVER and srv["parentSpanId"] == CLIENT_SPAN
    assert srv["name"] == "POST /v1/chat/completions"
    a = srv["attributes"]
    assert a["http.request.method"] == "POST" and a["url.path"] == "/v1/chat/completions"
    assert a["http.route"] == "/v1/chat/completions" and a["http.response.status_code"] == 200
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == s.port
    assert srv["traceState"] == "vendor=abc,other=1"
    assert srv["resource"]["service.name"] == "sluice-test"
    attempt = by_id[up.group(2)]
    assert attempt["kind"] == CLIENT and attempt["parentSpanId"] == server_span
    ga = attempt["attributes"]
    assert ga["gen_ai.operation.name"] == "chat" and ga["gen_ai.provider.name"] == "openai"
    assert ga["gen_ai.request.model"] == "gpt-4o-mini"
    assert ga["gen_ai.response.model"] == j["model"] and ga["gen_ai.response.id"] == j["id"]
    assert ga["gen_ai.response.finish_reasons"] == [j["choices"][0]["finish_reason"]]
    assert ga["gen_ai.usage.input_tokens"] == j["usage"]["prompt_tokens"]
    assert ga["gen_ai.usage.output_tokens"] == j["usage"]["completion_tokens"]
    assert abs(ga["sluice.cost_usd"] - float(h["x-sluice-cost-usd"])) < 1e-9
    assert ga["sluice.cache"] == "miss" and ga["sluice.retry"] == 0
    assert ga["sluice.provider"] == "mock" and ga["sluice.breaker.state"] == "closed"
    assert attempt["name"] == "chat gpt-4o-mini"
    lookup = [x for x in t if x["name"] == "cache lookup"]
    assert len(lookup) == 1 and lookup[0]["parentSpanId"] == server_span
    assert lookup[0]["attributes"]["sluice.cache.result"] == "miss"
    assert lookup[0]["attributes"]["sluice.cache.layer"] == "l1"
    for x in t:  # children inside their parent's time
        assert int(x["start"]) <= int(x["end"])
        if x["parentSpanId"] == server_span:
            assert int(srv["start"]) <= int(x["start"]) and int(x["end"]) <= int(srv["end"])
    # the collector's auth header went with the export; no key, no prompt in any span
    exp = [l for l in rcv.lines() if l["type"] == "export"]
    assert exp[0]["headers"]["x-collector-token"] == "tok-collector-1234"
    assert exp[0]["headers"]["content-type"] == "application/x-protobuf"
    dump = json.dumps(rcv.spans())
    assert "sk-upstream-secret" not in dump and "tell me about tracing" not in dump
    assert j["choices"][0]["message"]["content"] not in dump
    # a repeat is a cache hit: a lookup span (hit, l1) and no upstream attempt
    st, h2, _, _ = post_json(s.url + "/v1/chat/completions", chat("tell me about tracing"))
    assert st == 200 and h2["x-sluice-cache"] == "hit"
    tid2 = TP.match(h2["traceparent"]).group(1)
    assert tid2 != CLIENT_TRACE  # no traceparent sent: a trace of its own
    t2 = trace_of(rcv.wait(lambda sp: len(trace_of(sp, tid2)) >= 2), tid2)
    names = sorted(x["name"] for x in t2)
    assert names == ["POST /v1/chat/completions", "cache lookup"], names
    hit = [x for x in t2 if x["name"] == "cache lookup"][0]["attributes"]
    assert hit["sluice.cache.result"] == "hit" and hit["sluice.cache.layer"] == "l1"
    srv2 = [x for x in t2 if x["kind"] == SERVER][0]
    assert srv2["parentSpanId"] == "" and srv2["attributes"]["sluice.cache"] == "hit"
    assert len(mock_traces(m)) == 1
    s.stop(); m.stop(); rcv.stop()


HOSTILE = [
    "00-%s-%s-01" % (CLIENT_TRACE.upper(), CLIENT_SPAN),      # uppercase
    "00-%s-%s-01" % ("0" * 32, CLIENT_SPAN),                   # all-zero trace id
    "00-%s-%s-01" % (CLIENT_TRACE, "0" * 16),                  # all-zero span id
    "ff-%s-%s-01" % (CLIENT_TRACE, CLIENT_SPAN),               # version ff
    "00-%s-%s-01-extra" % (CLIENT_TRACE, CLIENT_SPAN),         # version 00 with more
    "00-%s-%s-1" % (CLIENT_TRACE, CLIENT_SPAN),                # short flags
    "00_%s_%s_01" % (CLIENT_TRACE, CLIENT_SPAN),               # wrong separators
    "00-%s-%s-zz" % (CLIENT_TRACE, CLIENT_SPAN),               # flags not hex
    "garbage", "", "00-" + "a" * 200,
]


def test_malformed_traceparent_starts_a_new_trace():
    rcv, m = Receiver(), Mock()
    s = Sluice(base_config(m, tracing=tracing(rcv.url)))
    for bad in HOSTILE:
        st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat("x"),
                                headers={"traceparent": bad, "tracestate": "v=1"})
        assert st == 200, (bad, j)
        mt = TP.match(h["traceparent"])
        assert mt and mt.group(1) != CLIENT_TRACE, (bad, h["traceparent"])
        assert h["traceparent"].endswith("-01")  # a new trace, sampled at the default 1.0
    # a tracestate without a valid traceparent is not carried
    assert all(t["tracestate"] is None for t in mock_traces(m))
    # two traceparent headers: ambiguous, a new trace
    raw = ("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "traceparent: %s\r\ntraceparent: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s")
    body = json.dumps(chat("dup"))
    from harness import send_raw
    out = send_raw(s.port, (raw % (CLIENT_TP, CLIENT_TP, len(body), body)).encode()).decode()
    assert out.startswith("HTTP/1.1 200") and CLIENT_TRACE not in out.split("\r\n\r\n")[0]
    # a higher version is read by its first four fields
    v = "01-%s-%s-01-what-comes-next" % (CLIENT_TRACE, CLIENT_SPAN)
    st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("y"), headers={"traceparent": v})
    assert st == 200 and TP.match(h["traceparent"]).group(1) == CLIENT_TRACE
    s.stop(); m.stop(); rcv.stop()


def test_capture_content_and_retry_spans():
    rcv, m = Receiver(), Mock()
    s = Sluice(base_config(m, retries={"max": 2, "base_ms": 10},
                           tracing=tracing(rcv.url, capture_content=True)))
    m.config(fail_next=1)
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat("the secret recipe"))
    assert st == 200, j
    tid = TP.match(h["traceparent"]).group(1)
    t = trace_of(rcv.wait(lambda sp: len(trace_of(sp, tid)) >= 3), tid)
    srv = [x for x in t if x["kind"] == SERVER][0]
    attempts = sorted((x for x in t if x["kind"] == CLIENT), key=lambda x: x["attributes"]["sluice.retry"])
    assert [x["attributes"]["sluice.retry"] for x in attempts] == [0, 1]
    assert all(x["parentSpanId"] == srv["spanId"] for x in attempts)
    assert attempts[0]["status"]["code"] == 2 and attempts[0]["attributes"]["http.response.status_code"] == 500
    assert attempts[1]["attributes"]["http.response.status_code"] == 200
    # each attempt was its own parent upstream
    ups = [TP.match(x["traceparent"]).group(2) for x in mock_traces(m)]
    assert ups == [x["spanId"] for x in attempts]
    assert srv["attributes"]["sluice.retries"] == 1
    assert "the secret recipe" in attempts[1]["attributes"]["gen_ai.input.messages"]
    assert j["choices"][0]["message"]["content"] in attempts[1]["attributes"]["gen_ai.output.messages"]
    s.stop(); m.stop(); rcv.stop()


def test_stream_attempt_and_coalescing_wait():
    rcv, m = Receiver(), Mock()
    s = Sluice(base_config(m, cache={"enabled": True}, tracing=tracing(rcv.url)))
    st, h, _, raw = request("POST", s.url + "/v1/chat/completions", chat("streamed", stream=True)), None, None, None
    status, hd, body = st
    assert status == 200 and TP.match(hd["traceparent"])
    tid = TP.match(hd["traceparent"]).group(1)
    t = trace_of(rcv.wait(lambda sp: any(x["kind"] == CLIENT for x in trace_of(sp, tid))), tid)
    a = [x for x in t if x["kind"] == CLIENT][0]["attributes"]
    first = json.loads([l for l in body.decode().split("\n") if l.startswith("data: {")][0][6:])
    assert a["gen_ai.response.id"] == first["id"] and a["gen_ai.response.model"] == first["model"]
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.usage.output_tokens"] > 0
    # coalescing: followers wait on the leader's flight
    m.config(delay_ms=400)
    out = []
    def one():
        out.append(post_json(s.url + "/v1/chat/completions", chat("popular")))
    ts = [threading.Thread(target=one) for _ in range(4)]
    for th in ts:
        th.start()
    for th in ts:
        th.join(10)
    log = s.wait_log(5)
    followers = [l for l in log if l["cache"] == "coalesced"]
    assert followers, log
    f = followers[0]
    ft = trace_of(rcv.wait(lambda sp: any(x["name"] == "coalesce wait" for x in trace_of(sp, f["trace_id"]))),
                  f["trace_id"])
    w = [x for x in ft if x["name"] == "coalesce wait"][0]
    assert w["attributes"]["sluice.coalesce.led_by"] == f["led_by"]
    assert int(w["end"]) - int(w["start"]) > 100e6  # it waited for the leader's 400 ms
    s.stop(); m.stop(); rcv.stop()


def test_collector_down_costs_requests_nothing_and_drops_are_counted():
    m = Mock()
    dead = "http://127.0.0.1:%d" % free_port()
    s = Sluice(base_config(m, tracing=tracing(dead, max_queue_spans=20, flush_ms=20)))
    t0 = time.time()
    for i in range(60):
        st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("down %d" % i), timeout=5)
        assert st == 200 and TP.match(h["traceparent"])
    assert time.time() - t0 < 15
    end = time.time() + 8
    while time.time() < end and metric(s, "sluice_trace_export_failures_total") < 2:
        time.sleep(0.1)
    assert metric(s, "sluice_trace_export_failures_total") >= 2
    assert metric(s, 'sluice_trace_spans_dropped_total{reason="queue_full"}') > 0
    assert metric(s, "sluice_trace_queue_spans") <= 20
    s.stop(); m.stop()


def test_collector_slow_then_back():
    rcv, m = Receiver(), Mock()
    rcv.ctl(mode="slow", delay_ms=3000)
    s = Sluice(base_config(m, tracing=tracing(rcv.url, timeout_ms=300, flush_ms=20)))
    lat = []
    for i in range(20):
        t0 = time.time()
        st, _, _, _ = post_json(s.url + "/v1/chat/completions", chat("slow %d" % i))
        lat.append(time.time() - t0)
        assert st == 200
    assert max(lat) < 1.0, lat  # the 300 ms export timeout never reaches a request
    end = time.time() + 5
    while time.time() < end and metric(s, "sluice_trace_export_failures_total") < 1:
        time.sleep(0.1)
    assert metric(s, "sluice_trace_export_failures_total") >= 1
    rcv.ctl(mode="ok")
    st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("after"))
    tid = TP.match(h["traceparent"]).group(1)
    assert trace_of(rcv.wait(lambda sp: trace_of(sp, tid), timeout=10), tid)
    assert metric(s, "sluice_trace_spans_exported_total") > 0
    s.stop(); m.stop(); rcv.stop()


def test_sampling_is_parent_based():
    rcv, m = Receiver(), Mock()
    s = Sluice(base_config(m, tracing=tracing(rcv.url, sample_ratio=0)))
    st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("unsampled"))
    assert st == 200 and h["traceparent"].endswith("-00")
    tid = TP.match(h["traceparent"]).group(1)
    assert s.wait_log(1)[0]["trace_id"] == tid
    assert mock_traces(m)[0]["traceparent"].endswith("-00")  # the provider is told too
    st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("sampled by the client"),
                            headers={"traceparent": CLIENT_TP})
    assert h["traceparent"].endswith("-01")
    spans = rcv.wait(lambda sp: trace_of(sp, CLIENT_TRACE))
    assert trace_of(spans, CLIENT_TRACE) and not trace_of(spans, tid)
    s.stop(); m.stop(); rcv.stop()


def test_tracing_off_adds_nothing():
    m = Mock()
    s = Sluice(base_config(m))
    st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("off"),
                            headers={"traceparent": CLIENT_TP})
    assert st == 200 and "traceparent" not in h
    assert "trace_id" not in s.wait_log(1)[0]
    assert mock_traces(m)[0]["traceparent"] is None
    assert "sluice_trace_spans_dropped_total{" not in request("GET", s.url + "/metrics")[2].decode()
    s.stop(); m.stop()


def test_bad_tracing_config_is_refused():
    from harness import SLUICE_BIN
    import tempfile
    for text, why in [("tracing: { otlp_endpoint: ftp://x }\n", "tracing.otlp_endpoint"),
                      ("tracing: { otlp_endpoint: 'http://x', headers: { 'bad name': v } }\n", "tracing.headers"),
                      ("tracing: { sample_ratio: 2 }\n", "tracing.sample_ratio")]:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
        p = subprocess.run([SLUICE_BIN, "-t", "-c", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        assert p.returncode == 1 and why in p.stderr, (text, p.stderr)


def test_redis_commands_over_the_threshold_get_spans():
    rcv, m, r = Receiver(), Mock(), Redis()
    s = Sluice(base_config(m, redis={"url": r.url, "timeout_ms": 500}, cache={"enabled": True},
                           tracing=tracing(rcv.url, redis_slow_ms=0)))
    st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("redis traced"))
    assert st == 200
    tid = TP.match(h["traceparent"]).group(1)
    t = trace_of(rcv.wait(lambda sp: any(x["name"] == "redis GET" for x in trace_of(sp, tid))), tid)
    srv = [x for x in t if x["kind"] == SERVER][0]
    get = [x for x in t if x["name"] == "redis GET"][0]
    assert get["kind"] == CLIENT and get["parentSpanId"] == srv["spanId"]
    a = get["attributes"]
    assert a["db.system.name"] == "redis" and a["db.operation.name"] == "GET"
    assert a["server.port"] == r.port
    assert "sluice" not in json.dumps(a)  # no key (the cache keys start with sluice)
    lookup = [x for x in t if x["name"] == "cache lookup"][0]["attributes"]
    assert lookup["sluice.cache.layer"] == "l2" and lookup["sluice.cache.result"] == "miss"
    s.stop(); m.stop()
    # over a threshold nothing is that slow: no Redis spans
    s = Sluice(base_config(m2 := Mock(), redis={"url": r.url}, cache={"enabled": True},
                           tracing=tracing(rcv.url, redis_slow_ms=5000)))
    st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("redis fast"))
    tid = TP.match(h["traceparent"]).group(1)
    t = trace_of(rcv.wait(lambda sp: any(x["kind"] == SERVER for x in trace_of(sp, tid))), tid)
    time.sleep(0.3)
    assert not [x for x in trace_of(rcv.spans(), tid) if x["name"].startswith("redis ")]
    s.stop(); m2.stop(); r.kill(); rcv.stop()


def test_service_spans_sla_tick_and_triage():
    rcv, m = Receiver(), Mock()
    s = Sluice(base_config(m, sla={"evaluate_every_s": 1}, tracing=tracing(rcv.url)))
    st, h, j, _ = post_json(s.url + "/triage/classify",
                            {"ticket_id": "T-1", "subject": "refund", "content": "charged twice"})
    assert st == 200, j
    tid = TP.match(h["traceparent"]).group(1)
    t = trace_of(rcv.wait(lambda sp: any(x["kind"] == CLIENT for x in trace_of(sp, tid))), tid)
    by = {x["name"]: x for x in t}
    srv, tri = by["POST /triage/classify"], by["triage classify"]
    llm = by["sluice /v1/chat/completions"]
    attempt = [x for x in t if x["kind"] == CLIENT][0]
    assert tri["parentSpanId"] == srv["spanId"] and llm["parentSpanId"] == tri["spanId"]
    assert llm["kind"] == INTERNAL and attempt["parentSpanId"] == llm["spanId"]
    ta = tri["attributes"]
    assert ta["sluice.triage.ticket_id"] == "T-1" and ta["sluice.triage.fallback"] == j["fallback"]
    assert ta["sluice.triage.product"] == j["product"] and ta["sluice.triage.urgency"] == j["urgency"]
    assert "charged twice" not in json.dumps(t)
    ticks = rcv.wait(lambda sp: any(x["name"] == "sla evaluate" for x in sp), timeout=6)
    tick = [x for x in ticks if x["name"] == "sla evaluate"][0]
    assert tick["parentSpanId"] == "" and tick["kind"] == INTERNAL
    assert tick["attributes"]["sluice.sla.due"] >= 0
    s.stop(); m.stop(); rcv.stop()


def test_passthrough_call_carries_the_request_span():
    rcv, m = Receiver(), Mock()
    s = Sluice(base_config(m, tracing=tracing(rcv.url)))
    st, h, raw = request("GET", s.url + "/v1/pt/echo", headers={"traceparent": CLIENT_TP,
                                                               "tracestate": "k=v"})
    assert st == 200, raw
    mine = TP.match(h["traceparent"])
    got = m.last()["headers"]
    up = TP.match(got["traceparent"])
    assert up.group(1) == CLIENT_TRACE and up.group(2) == mine.group(2)
    assert got["tracestate"] == "k=v"
    srv = [x for x in rcv.wait(lambda sp: trace_of(sp, CLIENT_TRACE)) if x["traceId"] == CLIENT_TRACE][0]
    assert srv["name"] == "GET /v1/{passthrough}" and srv["parentSpanId"] == CLIENT_SPAN
    s.stop(); m.stop(); rcv.stop()


def test_spans_still_queued_at_a_clean_stop_are_exported():
    """A clean stop (SIGTERM) sends the spans queued since the last flush
    before the process exits: the last requests' traces are not lost."""
    rcv, m = Receiver(), Mock()
    s = Sluice(base_config(m, tracing=tracing(rcv.url, flush_ms=60000)))  # no timed flush within the test
    st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("the last request"))
    assert st == 200
    trace_id = TP.match(h["traceparent"]).group(1)
    time.sleep(0.3)
    assert not trace_of(rcv.spans(), trace_id), "exported before the stop: the test proves nothing"
    s.stop()
    spans = rcv.wait(lambda sp: any(x["kind"] == SERVER for x in trace_of(sp, trace_id)), timeout=3)
    assert any(x["kind"] == SERVER for x in trace_of(spans, trace_id)), spans
    rcv.stop(); m.stop()


def test_a_dead_collector_delays_a_stop_by_at_most_its_timeout():
    m = Mock()
    dead = "http://127.0.0.1:%d" % free_port()
    s = Sluice(base_config(m, tracing=tracing(dead, flush_ms=60000, timeout_ms=500)))
    st, _, _, _ = post_json(s.url + "/v1/chat/completions", chat("nobody listens"))
    assert st == 200
    t0 = time.time()
    s.stop()
    assert time.time() - t0 < 3, "the stop waited on a collector that is down"
    m.stop()
