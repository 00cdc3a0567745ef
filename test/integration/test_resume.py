"""Issue 21: resumable streams — every SSE event carries an id; a client that
lost its stream gets exactly the events after its Last-Event-ID, from the live
call or the stored stream, without a second upstream call."""
import json, socket, subprocess, time
import sdk
from harness import Mock, Redis, Sluice, base_config, chat, post_json, request, stream

U = "/v1/chat/completions"


def blocks(raw):
    """[(id or None, [data lines])] of an SSE body."""
    out = []
    for b in raw.decode().replace("\r\n", "\n").split("\n\n"):
        if not b.strip():
            continue
        ids = [l[3:].strip() for l in b.split("\n") if l.startswith("id:")]
        data = [l[5:].strip() for l in b.split("\n") if l.startswith("data:")]
        out.append((ids[-1] if ids else None, data))
    return out


def test_every_event_carries_an_id():
    m = Mock()
    s = Sluice(base_config(m, cache={"enabled": True}))
    m.config(stream_chunks=4)
    for _ in range(2):  # upstream, then the cache's replay
        st, h, _, raw = stream(s.url + U, chat("ids", stream=True), {"x-request-id": "rq-ids"})
        bl = blocks(raw)
        assert st == 200 and bl[-1][1] == ["[DONE]"]
        assert [b[0] for b in bl] == ["rq-ids-%d" % (i + 1) for i in range(len(bl))], bl
    assert h["x-sluice-cache"] == "hit"
    # Anthropic's dialect, and an error event mid-stream
    st, _, _, raw = stream(s.url + "/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 50, "stream": True,
                                                    "messages": [{"role": "user", "content": "hi"}]})
    assert st == 200 and all(b[0] for b in blocks(raw)), raw
    m.config(drop_after_chunks=2)
    st, _, _, raw = stream(s.url + U, chat("cut", stream=True))
    bl = blocks(raw)
    assert "error" in bl[-1][1][0] and all(b[0] for b in bl), bl
    s.stop()


def _curl(args, timeout=10):
    p = subprocess.run(["curl", "-sN"] + args, capture_output=True, timeout=timeout)
    return p.stdout


def _wait_idle(m, timeout=5):
    end = time.time() + timeout
    while time.time() < end and m.stats()["inflight"]:
        time.sleep(0.05)


def test_drop_and_resume_with_curl():
    m = Mock()
    s = Sluice(base_config(m))
    m.config(stream_chunks=12, chunk_delay_ms=80)
    body = json.dumps(chat("resume me", stream=True))
    head = ["-H", "Content-Type: application/json", "-d", body, s.url + U]
    got = blocks(_curl(["--max-time", "0.5", "-H", "x-request-id: rq-curl"] + head))
    assert 0 < len(got) < 10, got
    last = got[-1][0]
    assert last == "rq-curl-%d" % len(got)
    rest = blocks(_curl(["-H", "Last-Event-ID: " + last] + head))  # while the call still runs
    assert [b[0] for b in rest] == ["rq-curl-%d" % (i + 1) for i in range(len(got), len(got) + len(rest))]
    assert rest[-1][1] == ["[DONE]"]
    _wait_idle(m)
    assert m.stats()["disconnects"] == 0, "the drop cancelled the upstream call"
    st, _, ref, _ = stream(s.url + U, chat("resume me", stream=True))  # the same answer, in one go
    assert [d for b in got + rest for d in b[1]] == ref
    # once finished, the stored stream: through GET /v1/streams/{id} too
    again = blocks(_curl(["-H", "Last-Event-ID: rq-curl-3", s.url + "/v1/streams/rq-curl"]))
    assert [b[0] for b in again][0] == "rq-curl-4" and again[-1][1] == ["[DONE]"]
    assert [d for b in again for d in b[1]] == ref[3:]
    assert m.stats()["requests"] == 2  # the dropped call (run to its end) and the reference
    log = s.wait_log(4)
    first = [l for l in log if l["request_id"] == "rq-curl"][0]
    assert first["status"] == 200 and first["cost_usd"] > 0, first
    costs = sorted(l["cost_usd"] for l in log if l["path"] == U)
    assert len(costs) == 3 and costs[0] == 0 and costs[1] == costs[2] > 0, log  # billed once
    assert [l["cost_usd"] for l in log if l["path"].startswith("/v1/streams/")] == [0]
    s.stop()


def test_openai_sdk_drop_and_resume():
    m = Mock()
    s = Sluice(base_config(m))
    m.config(stream_chunks=10, chunk_delay_ms=60)
    r = sdk.run("resume", "drop_resume", s.url + "/v1", env={"SLUICE_RID": "rq-sdk", "SLUICE_KEEP": "3"})
    assert r["dropped_after"] == 3 and r["resumed_chunks"] > 0 and r["finish"] == "stop", r
    _wait_idle(m)
    assert m.stats()["requests"] == 1 and m.stats()["disconnects"] == 0
    m.config(stream_chunks=10, chunk_delay_ms=0)
    ref = post_json(s.url + U, chat("resume sdk"))[2]["choices"][0]["message"]["content"]
    assert r["text"] == ref, (r, ref)
    s.stop()


def _open_stream(port, body, rid):
    c = socket.create_connection(("127.0.0.1", port))
    data = json.dumps(body).encode()
    c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"x-request-id: %s\r\nContent-Length: %d\r\n\r\n%s" % (rid.encode(), len(data), data))
    return c


def test_resume_s_zero_cancels_and_limits_apply():
    m = Mock()
    s = Sluice(base_config(m, streams={"resume_s": 0}))
    m.config(stream_chunks=20, chunk_delay_ms=100)
    c = _open_stream(s.port, chat("no resume", stream=True), "rq-zero")
    time.sleep(0.4)
    c.close()
    end = time.time() + 3
    while time.time() < end and not m.stats()["disconnects"]:
        time.sleep(0.05)
    assert m.stats()["disconnects"] == 1
    st, _, j, _ = post_json(s.url + U, chat("no resume", stream=True), {"Last-Event-ID": "rq-zero-2"})
    assert st == 404 and j["error"]["code"] == "stream_not_found", j
    s.stop()
    # a dropped stream beyond streams.max_resumable_bytes is cancelled too
    m.reset()
    s = Sluice(base_config(m, streams={"resume_s": 60, "max_resumable_bytes": 600}))
    m.config(stream_chunks=40, chunk_delay_ms=50)
    c = _open_stream(s.port, chat("too big to keep", stream=True), "rq-big")
    time.sleep(0.2)
    c.close()
    end = time.time() + 5
    while time.time() < end and not m.stats()["disconnects"]:
        time.sleep(0.05)
    assert m.stats()["disconnects"] == 1
    s.stop()


def test_resume_refusals():
    m = Mock()
    keys = [{"key": "sk-a-123456", "tenant": "a"}, {"key": "sk-b-123456", "tenant": "b"}]
    s = Sluice(base_config(m, keys=keys))
    a, b = {"Authorization": "Bearer sk-a-123456"}, {"Authorization": "Bearer sk-b-123456"}
    st, _, mine, _ = stream(s.url + U, chat("mine", stream=True), dict(a, **{"x-request-id": "rq-a"}))
    assert st == 200
    st, _, j, _ = post_json(s.url + U, chat("mine", stream=True), dict(b, **{"Last-Event-ID": "rq-a-1"}))
    assert st == 404 and j["error"]["code"] == "stream_not_found"
    st, _, body = request("GET", s.url + "/v1/streams/rq-a", headers=b)
    assert st == 404
    st, _, body = request("GET", s.url + "/v1/streams/rq-a", headers=a)
    assert st == 200 and blocks(body)[0][0] == "rq-a-1"
    assert request("GET", s.url + "/v1/streams/rq-a")[0] == 401
    st, _, j, _ = post_json(s.url + U, chat("mine", stream=True), dict(a, **{"Last-Event-ID": "garbage"}))
    assert st == 400 and j["error"]["code"] == "invalid_last_event_id"
    assert m.stats()["requests"] == 1
    # another tenant's stream under the same request id is its own
    st, _, theirs, _ = stream(s.url + U, chat("theirs", stream=True), dict(b, **{"x-request-id": "rq-a"}))
    assert st == 200 and theirs != mine
    for h, ev in ((a, mine), (b, theirs)):
        st, _, body = request("GET", s.url + "/v1/streams/rq-a", headers=h)
        assert st == 200 and [d for x in blocks(body) for d in x[1]] == ev
    s.stop()


def test_resume_on_another_instance():
    m, r = Mock(), Redis()
    c = base_config(m, redis={"url": r.url, "timeout_ms": 200})
    a, b = Sluice(c), Sluice(dict(c))
    m.config(stream_chunks=6)
    st, _, ev, _ = stream(a.url + U, chat("over there", stream=True), {"x-request-id": "rq-ab"})
    assert st == 200
    time.sleep(0.1)
    st, _, body = request("GET", b.url + "/v1/streams/rq-ab", headers={"Last-Event-ID": "rq-ab-2"})
    bl = blocks(body)
    assert st == 200 and bl[0][0] == "rq-ab-3" and [d for x in bl for d in x[1]] == ev[2:]
    st, _, ev2, _ = stream(b.url + U, chat("over there", stream=True), {"Last-Event-ID": "rq-ab-5"})
    assert st == 200 and ev2 == ev[5:]
    assert m.stats()["requests"] == 1
    a.stop()
    b.stop()
