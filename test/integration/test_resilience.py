"""Issue 5: fallback chain, breakers, retries, timeouts, client-abort cancel."""
import json, os, socket, threading, time
from harness import Mock, Sluice, base_config, chat, post_json, request, stream


def two(m1, m2, **over):
    c = base_config(m1, **over)
    c["providers"] = [
        {"name": "primary", "kind": "openai", "base_url": m1.url + "/v1", "api_key": "k1", "models": ["*"]},
        {"name": "backup", "kind": "openai", "base_url": m2.url + "/v1", "api_key": "k2", "models": ["*"]},
    ]
    return c


def test_fallback_on_500():
    m1, m2 = Mock(), Mock()
    s = Sluice(two(m1, m2, retries={"max": 2, "base_ms": 1}))
    m1.config(status=500)
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat())
    assert st == 200 and h["x-sluice-provider"] == "backup", (st, h)
    log = s.wait_log(1)[0]
    assert log["retries"] == 1 and log["providers_tried"] == "primary,backup", log
    s.stop()


def test_client_errors_not_retried():
    m1, m2 = Mock(), Mock()
    s = Sluice(two(m1, m2, retries={"max": 2, "base_ms": 1}))
    m1.config(status=400)
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat())
    assert st == 400 and m2.stats()["requests"] == 0 and m1.stats()["requests"] == 1
    s.stop()


def test_breaker_opens_probes_once_and_recovers():
    m1, m2 = Mock(), Mock()
    c = two(m1, m2, retries={"max": 1, "base_ms": 1}, breaker={"failures": 3, "cooldown_s": 1})
    s = Sluice(c)
    m1.config(status=503)
    u = s.url + "/v1/chat/completions"
    for i in range(6):
        assert post_json(u, chat("b%d" % i))[0] == 200
    calls = m1.stats()["requests"]
    assert calls == 3, calls  # opened after 3 failures, then skipped
    h = json.loads(request("GET", s.url + "/health")[2])
    assert any(p.get("breaker") == "open" for p in h["providers"]), h
    time.sleep(1.1)  # half-open: 20 concurrent requests make one probe
    m1.config(status=200, delay_ms=200)
    res = []
    ts = [threading.Thread(target=lambda i=i: res.append(post_json(u, chat("p%d" % i)))) for i in range(20)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert all(r[0] == 200 for r in res)
    assert m1.stats()["requests"] == calls + 1, m1.stats()
    m1.config(delay_ms=0)
    post_json(u, chat("after"))
    assert m1.stats()["requests"] == calls + 2  # closed again
    s.stop()


def test_all_open_fast_503_with_retry_after():
    m = Mock()
    s = Sluice(base_config(m, retries={"max": 0, "base_ms": 1}, breaker={"failures": 1, "cooldown_s": 30}))
    m.config(status=500)
    post_json(s.url + "/v1/chat/completions", chat())
    t0 = time.time()
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat("x"))
    assert st == 503 and int(h["retry-after"]) > 0 and time.time() - t0 < 0.1, (st, h)
    assert j["error"]["code"] == "providers_unavailable"
    s.stop()


def test_429_retry_after_honoured_or_passed():
    m = Mock()
    s = Sluice(base_config(m, retries={"max": 1, "base_ms": 1}))
    m.config(status=429, retry_after="1", fail_next=0)
    t0 = time.time()
    st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat())
    assert st == 429 and time.time() - t0 >= 0.9 and m.stats()["requests"] == 2, (st, m.stats())
    m.reset()
    m.config(status=429, retry_after="3600")
    st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("y"))
    assert st == 429 and h.get("retry-after") == "3600" and m.stats()["requests"] == 1
    s.stop()


def test_hanging_provider_504_within_timeouts():
    m = Mock()
    s = Sluice(base_config(m, retries={"max": 0, "base_ms": 1},
                           timeouts={"connect_ms": 200, "first_byte_ms": 400, "total_ms": 2000, "idle_ms": 300}))
    m.config(delay_ms=5000)
    t0 = time.time()
    assert post_json(s.url + "/v1/chat/completions", chat())[0] == 504
    assert time.time() - t0 < 1.0
    m.config(delay_ms=0, stream_chunks=4, chunk_delay_ms=1000)
    st, _, ev, _ = stream(s.url + "/v1/chat/completions", chat("idle", stream=True))
    assert st == 200 and "[DONE]" not in ev and "error" in json.loads(ev[-1])
    s.stop()


def test_client_abort_cancels_upstream():
    m = Mock()
    s = Sluice(base_config(m))
    m.config(delay_ms=3000)
    body = json.dumps(chat("abort")).encode()
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    time.sleep(0.3)
    c.close()
    t0 = time.time()
    while m.stats()["disconnects"] == 0 and time.time() - t0 < 1:
        time.sleep(0.01)
    assert m.stats()["disconnects"] == 1, m.stats()
    assert time.time() - t0 < 0.3
    log = s.wait_log(1)
    assert log[0]["status"] == 499 and log[0]["error"] == "client closed", log
    s.stop()


def test_local_fd_exhaustion_is_not_a_provider_failure():
    """Issue 17 item 10: with few descriptors left, sluice's own upstream
    sockets fail (EMFILE): those calls are 503 server_overloaded and never
    count against the provider's breaker (nor open it for later calls)."""
    import http.client
    m = Mock()
    s = Sluice(base_config(m, retries={"max": 1, "base_ms": 1}, breaker={"failures": 3, "cooldown_s": 60}),
               max_fds=64)
    conns = []
    free = 64 - len(os.listdir("/proc/%d/fd" % s.proc.pid))
    for _ in range(free - 6):  # accepted client connections use up the descriptors but 6
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=20)
        c.request("GET", "/health/live")
        c.getresponse().read()
        conns.append(c)
    m.config(delay_ms=400)
    out = [None] * len(conns)

    def call(i):
        c = conns[i]
        c.request("POST", "/v1/chat/completions", body=json.dumps(chat("fd burst %d" % i)),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        j = json.loads(r.read() or b"null")
        out[i] = (r.status, (j or {}).get("error", {}).get("code") if r.status != 200 else None)
    ts = [threading.Thread(target=call, args=(i,)) for i in range(len(conns))]
    [t.start() for t in ts]
    [t.join(30) for t in ts]
    codes = {}
    for o in out:
        codes[o] = codes.get(o, 0) + 1
    assert all(o in ((200, None), (503, "server_overloaded")) for o in out), codes
    assert codes.get((503, "server_overloaded"), 0) > 0, "the burst never ran out of descriptors: %s" % codes
    for c in conns:
        c.close()
    m.config(delay_ms=0)
    time.sleep(0.3)
    after = [post_json(s.url + "/v1/chat/completions", chat("after %d" % i))[0] for i in range(10)]
    assert after == [200] * 10, after
    h = json.loads(request("GET", s.url + "/health")[2])
    assert all(p["breaker"] == "closed" and p["consecutive_failures"] == 0 for p in h["providers"]), h
    s.stop()
