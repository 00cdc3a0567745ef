"""Issue 21: Idempotency-Key — at most one upstream call per tenant and key."""
import json, threading, time
from harness import Mock, Redis, Sluice, base_config, chat, post_json, stream

U = "/v1/chat/completions"


def idem(k):
    return {"Idempotency-Key": k}


def run_parallel(fns):
    out = [None] * len(fns)
    ts = [threading.Thread(target=lambda i=i: out.__setitem__(i, fns[i]())) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    return out


def test_sampled_request_runs_once_and_replays_at_cost_zero():
    m = Mock()
    s = Sluice(base_config(m))
    body = chat("pay once", temperature=1)
    st1, h1, j1, b1 = post_json(s.url + U, body, idem("order-1"))
    st2, h2, j2, b2 = post_json(s.url + U, body, idem("order-1"))
    assert st1 == st2 == 200 and b1 == b2
    assert "x-sluice-idempotent-replay" not in h1 and h2["x-sluice-idempotent-replay"] == "true"
    assert m.stats()["requests"] == 1
    log = s.wait_log(2)
    assert log[0]["cost_usd"] > 0 and log[1]["cost_usd"] == 0, log
    # another key is another call; the same key for another tenant too (open mode: one tenant)
    post_json(s.url + U, body, idem("order-2"))
    assert m.stats()["requests"] == 2
    s.stop()


def test_duplicate_in_flight_attaches_streams_get_replay_then_live():
    m = Mock()
    s = Sluice(base_config(m))
    m.config(delay_ms=200, stream_chunks=8, chunk_delay_ms=60)
    body = chat("stream once", stream=True, temperature=1)

    def first():
        return stream(s.url + U, body, idem("s-1"))

    def late():
        time.sleep(0.45)  # mid-stream: some events went out already
        return stream(s.url + U, body, idem("s-1"))
    a, b = run_parallel([first, late])
    assert a[0] == b[0] == 200
    assert a[2] == b[2] and a[2][-1] == "[DONE]", (a[2], b[2])
    assert b[1]["x-sluice-idempotent-replay"] == "true"
    assert m.stats()["requests"] == 1
    # a plain duplicate in flight waits for the whole answer
    m.config(delay_ms=300, stream_chunks=0, chunk_delay_ms=0)
    p = chat("plain once", temperature=1)
    r = run_parallel([lambda: post_json(s.url + U, p, idem("p-1"))] * 5)
    assert all(x[0] == 200 for x in r) and len({x[3] for x in r}) == 1
    assert sum(x[1].get("x-sluice-idempotent-replay") == "true" for x in r) == 4
    assert m.stats()["requests"] == 2
    s.stop()


def test_reused_key_422_and_long_key_400():
    m = Mock()
    s = Sluice(base_config(m))
    assert post_json(s.url + U, chat("one"), idem("k"))[0] == 200
    st, _, j, _ = post_json(s.url + U, chat("two"), idem("k"))
    assert st == 422 and j["error"]["code"] == "idempotency_key_reused", j
    st, _, j, _ = post_json(s.url + U, chat("one"), idem("x" * 256))
    assert st == 400 and j["error"]["type"] == "invalid_request_error" and "255" in j["error"]["message"], j
    assert post_json(s.url + U, chat("one"), idem("y" * 255))[0] == 200
    assert m.stats()["requests"] == 2
    s.stop()


def test_failure_before_any_byte_is_not_stored():
    m = Mock()
    s = Sluice(base_config(m, retries={"max": 1, "base_ms": 1}))
    m.config(status=503)
    st, h, _, _ = post_json(s.url + U, chat("flaky"), idem("f-1"))
    assert st == 503 and "x-sluice-idempotent-replay" not in h
    m.config(status=200)
    st, h, j, _ = post_json(s.url + U, chat("flaky"), idem("f-1"))
    assert st == 200 and "x-sluice-idempotent-replay" not in h, (st, h)
    st, h, _, _ = post_json(s.url + U, chat("flaky"), idem("f-1"))
    assert st == 200 and h["x-sluice-idempotent-replay"] == "true"
    assert m.stats()["requests"] == 3  # two failed attempts, one success
    # a 4xx the provider gave is an answer: kept
    m.config(status=400)
    assert post_json(s.url + U, chat("bad"), idem("b-1"))[0] == 400
    m.config(status=200)
    st, h, _, _ = post_json(s.url + U, chat("bad"), idem("b-1"))
    assert st == 400 and h["x-sluice-idempotent-replay"] == "true"
    s.stop()


def test_tenants_do_not_share_keys():
    m = Mock()
    keys = [{"key": "sk-a-123456", "tenant": "a"}, {"key": "sk-b-123456", "tenant": "b"}]
    s = Sluice(base_config(m, keys=keys))
    ha = dict(idem("same"), Authorization="Bearer sk-a-123456")
    hb = dict(idem("same"), Authorization="Bearer sk-b-123456")
    assert post_json(s.url + U, chat("t"), ha)[0] == 200
    st, h, _, _ = post_json(s.url + U, chat("t"), hb)
    assert st == 200 and "x-sluice-idempotent-replay" not in h
    assert m.stats()["requests"] == 2
    s.stop()


def _pair(m, r, lease_ms=2000):
    c = base_config(m, redis={"url": r.url, "timeout_ms": 200}, coalesce={"lease_ms": lease_ms})
    return Sluice(c), Sluice(dict(c))


def test_two_instances_duplicate_on_b_after_a():
    m, r = Mock(), Redis()
    a, b = _pair(m, r)
    body = chat("shared", temperature=1)
    st1, _, _, b1 = post_json(a.url + U, body, idem("x-1"))
    st2, h2, _, b2 = post_json(b.url + U, body, idem("x-1"))
    assert st1 == st2 == 200 and b1 == b2 and h2["x-sluice-idempotent-replay"] == "true"
    st3, _, j3, _ = post_json(b.url + U, chat("other"), idem("x-1"))
    assert st3 == 422 and j3["error"]["code"] == "idempotency_key_reused"
    # in flight on A, the duplicate on B waits for A's answer
    m.config(delay_ms=500)
    body = chat("in flight", temperature=1)
    res = run_parallel([lambda: post_json(a.url + U, body, idem("x-2")),
                        lambda: (time.sleep(0.15), post_json(b.url + U, body, idem("x-2")))[1]])
    assert res[0][0] == res[1][0] == 200 and res[0][3] == res[1][3]
    assert res[1][1]["x-sluice-idempotent-replay"] == "true"
    assert m.stats()["requests"] == 2
    a.stop()
    b.stop()


def test_holder_killed_the_duplicate_takes_over():
    m, r = Mock(), Redis()
    a, b = _pair(m, r, lease_ms=300)
    m.config(delay_ms=1500)
    body = chat("holder dies", temperature=1)
    t = threading.Thread(target=lambda: _swallow(lambda: post_json(a.url + U, body, idem("d-1"), timeout=5)))
    t.start()
    time.sleep(0.3)
    assert r.cmd("KEYS", "sluice:{i:*}:lock"), "A holds no lock"
    a.proc.kill()
    a.proc.wait()
    t0 = time.time()
    st, h, j, _ = post_json(b.url + U, body, idem("d-1"))
    assert st == 200 and "x-sluice-idempotent-replay" not in h, (st, h, j)
    assert time.time() - t0 < 3.0
    assert m.stats()["requests"] == 2  # A's call died with it; B ran once
    st, h, _, _ = post_json(b.url + U, body, idem("d-1"))
    assert st == 200 and h["x-sluice-idempotent-replay"] == "true"
    assert m.stats()["requests"] == 2
    b.stop()


def _swallow(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - the instance is killed under it
        pass


def _drop_after(port, body, key, wait):
    import socket
    data = json.dumps(body).encode()
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Idempotency-Key: %s\r\nContent-Length: %d\r\n\r\n%s" % (key.encode(), len(data), data))
    time.sleep(wait)
    c.close()


def test_client_drop_keeps_the_call_for_the_retry():
    m = Mock()
    s = Sluice(base_config(m))
    m.config(stream_chunks=10, chunk_delay_ms=80)
    body = chat("dropped stream", stream=True)
    _drop_after(s.port, body, "dk", 0.3)
    st, h, ev, _ = stream(s.url + U, body, idem("dk"))  # the retry: what was sent, then live
    assert st == 200 and h["x-sluice-idempotent-replay"] == "true" and ev[-1] == "[DONE]"
    assert m.stats()["requests"] == 1 and m.stats()["disconnects"] == 0
    m.config(stream_chunks=0, chunk_delay_ms=0, delay_ms=400)
    _drop_after(s.port, chat("dropped plain"), "pk", 0.1)
    time.sleep(0.5)
    st, h, j, _ = post_json(s.url + U, chat("dropped plain"), idem("pk"))
    assert st == 200 and h["x-sluice-idempotent-replay"] == "true", (st, h, j)
    assert m.stats()["requests"] == 2 and m.stats()["disconnects"] == 0
    s.stop()


def test_duplicate_of_a_failing_first_runs_on_its_own():
    m = Mock()
    s = Sluice(base_config(m, retries={"max": 0, "base_ms": 1}))
    m.config(delay_ms=300, fail_next=1)
    body = chat("fails first", temperature=1)
    res = run_parallel([lambda: post_json(s.url + U, body, idem("ff")),
                        lambda: (time.sleep(0.1), post_json(s.url + U, body, idem("ff")))[1]])
    assert res[0][0] == 500 and res[1][0] == 200, [r[:2] for r in res]
    assert "x-sluice-idempotent-replay" not in res[1][1]
    assert m.stats()["requests"] == 2
    st, h, _, b = post_json(s.url + U, body, idem("ff"))
    assert st == 200 and h["x-sluice-idempotent-replay"] == "true" and b == res[1][3]
    s.stop()
