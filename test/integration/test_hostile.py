"""Issue 10 (part): hostile HTTP and JSON get clean refusals and cost no upstream call."""
import json, socket, time
from harness import Mock, Sluice, base_config, chat, post_json, post_status_or_closed, request, send_raw


def status_of(raw):
    line = raw.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def test_hostile_framing():
    m = Mock()
    s = Sluice(base_config(m, server={"max_body_bytes": "64KiB", "max_header_bytes": "8KiB"}))
    body = json.dumps(chat()).encode()
    cases = {
        "cl+te": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s" % (len(body), body),
        "negative cl": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "alpha cl": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "huge cl": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "bad chunk": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "garbage line": b"HELLO THERE\r\n\r\n",
        "long uri": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "big header": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
    }
    for name, raw in cases.items():
        got = send_raw(s.port, raw, timeout=2)
        st = status_of(got)
        assert got == b"" or (st is not None and 400 <= st < 500), (name, got[:120])
    assert m.stats()["requests"] == 0
    assert request("GET", s.url + "/health/live")[0] == 200  # still serving
    s.stop()


def test_request_id_header_injection_refused():
    m = Mock()
    s = Sluice(base_config(m))
    raw = b"GET /health HTTP/1.1\r\nHost: x\r\nx-request-id: abc\rSet-Cookie: evil=1\r\n\r\n"
    got = send_raw(s.port, raw, timeout=2)
    assert b"Set-Cookie" not in got.split(b"\r\n\r\n")[0], got[:300]
    st, h, _ = request("GET", s.url + "/health", headers={"x-request-id": "a b\"c"})
    assert h["x-request-id"] != 'a b"c'  # unsafe ids are replaced, never echoed
    s.stop()


def test_hostile_json_bounded():
    m = Mock()
    s = Sluice(base_config(m, server={"max_body_bytes": "1MiB"}))
    u = s.url + "/v1/chat/completions"
    deep = '{"model":"m","messages":' + "[" * 5000 + "]" * 5000 + "}"
    assert post_json(u, deep)[0] == 400
    assert post_json(u, '{"model":"m","messages":[{"role":"user","content":"\\ud800"}]}')[0] == 400
    assert post_json(u, b'{"model":"m","messages":[{"role":"user","content":"\xff\xfe"}]}')[0] == 400
    assert post_json(u, chat(n=1000))[0] == 400
    huge = json.dumps(chat("x" * (2 << 20)))
    assert post_status_or_closed(u, huge) in (413, "closed")
    assert m.stats()["requests"] == 0
    s.stop()


def test_http10_stream_is_close_delimited():
    m = Mock()
    s = Sluice(base_config(m))
    body = json.dumps(chat("old client", stream=True)).encode()
    raw = b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    got = send_raw(s.port, raw, timeout=3)
    head, _, rest = got.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower(), head
    assert b"data: [DONE]" in rest
    s.stop()


def test_upstream_redirect_not_followed_and_oversized_answer():
    m = Mock()
    s = Sluice(base_config(m, retries={"max": 0, "base_ms": 1}, server={"max_response_bytes": "2KiB"}))
    m.config(body="x" * 5000)
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat("big"))
    assert st == 502, (st, j)
    s.stop()


def test_overload_503_while_health_answers():
    import threading
    m = Mock()
    s = Sluice(base_config(m, server={"max_inflight": 2}, retries={"max": 0, "base_ms": 1}))
    m.config(delay_ms=600)
    res = []
    ts = [threading.Thread(target=lambda i=i: res.append(post_json(s.url + "/v1/chat/completions", chat("load %d" % i))))
          for i in range(6)]
    [t.start() for t in ts]
    time.sleep(0.2)
    t0 = time.time()
    assert request("GET", s.url + "/health")[0] == 200 and time.time() - t0 < 0.2
    [t.join() for t in ts]
    codes = sorted(r[0] for r in res)
    assert codes.count(200) == 2 and codes.count(503) == 4, codes
    refused = [r for r in res if r[0] == 503][0]
    assert refused[1]["retry-after"] == "1" and refused[1]["retry-after-ms"] == "1000"
    s.stop()


def test_redis_error_replies_degrade():
    from harness import Redis
    m, r = Mock(), Redis()
    s = Sluice(base_config(m, cache={"enabled": True}, redis={"url": r.url},
                           keys=[{"key": "sk-e", "tenant": "e", "rpm": 100}]))
    time.sleep(0.3)
    h = {"Authorization": "Bearer sk-e"}
    r.cmd("SET", "sluice:{t:e}:rpm", "not a hash")  # the limits script now fails with WRONGTYPE
    assert post_json(s.url + "/v1/chat/completions", chat("wrongtype"), h)[0] == 200
    keys = r.cmd("KEYS", "sluice:{c:*}:v2")
    for k in keys:
        r.cmd("DEL", k)
        r.cmd("HSET", k, "f", "v")  # a cache entry of the wrong type is a miss, not an error
    assert post_json(s.url + "/v1/chat/completions", chat("wrongtype"), h)[0] == 200
    r.cmd("SCRIPT", "FLUSH")  # NOSCRIPT: EVALSHA falls back to EVAL
    r.cmd("DEL", "sluice:{t:e}:rpm")
    assert post_json(s.url + "/v1/chat/completions", chat("noscript"), h)[0] == 200
    assert r.cmd("EXISTS", "sluice:{t:e}:rpm") == 1, "the limits script did not run after NOSCRIPT"
    s.stop()


def test_pipelined_requests_in_order():
    import re
    m = Mock()
    s = Sluice(base_config(m))
    body = json.dumps(chat("piped")).encode()
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                 b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n" % (len(body), body))
    sock.settimeout(3)
    buf = b""
    try:
        while len(re.findall(rb"HTTP/1\.1 \d{3} ", buf)) < 4:
            got = sock.recv(65536)
            if not got:
                break
            buf += got
    except socket.timeout:
        pass
    sock.close()
    codes = [int(c) for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", buf)]
    assert codes == [200, 200, 404, 200], codes
    s.stop()
