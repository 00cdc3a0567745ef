"""Issue 4: identical in-flight requests share one upstream call."""
import json, socket, threading, time
from harness import Mock, Sluice, base_config, chat, post_json, request, stream


def run_parallel(n, fn):
    out = [None] * n
    ts = [threading.Thread(target=lambda i=i: out.__setitem__(i, fn(i))) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    return out


def test_fifty_plain_one_call():
    m = Mock()
    s = Sluice(base_config(m, cache={"enabled": True}))
    m.config(delay_ms=400)
    u = s.url + "/v1/chat/completions"
    res = run_parallel(50, lambda i: post_json(u, chat("popular")))
    assert all(r[0] == 200 for r in res)
    assert len({json.dumps(r[2], sort_keys=True) for r in res}) == 1
    caches = [r[1]["x-sluice-cache"] for r in res]
    assert caches.count("coalesced") >= 45, caches
    assert m.stats()["requests"] == 1
    log = s.wait_log(50)
    assert any(l["cache"] == "coalesced" and l["led_by"] for l in log)
    s.stop()


def test_streams_and_plain_twins_share_one_call():
    m = Mock()
    s = Sluice(base_config(m, cache={"enabled": True}))
    m.config(delay_ms=300, stream_chunks=5, chunk_delay_ms=50)
    u = s.url + "/v1/chat/completions"

    def one(i):
        if i % 2:
            return ("s",) + stream(u, chat("twins", stream=True))
        return ("p",) + post_json(u, chat("twins"))
    res = run_parallel(10, one)
    texts = set()
    for r in res:
        assert r[1] == 200, r
        if r[0] == "s":
            ev = r[3]
            assert ev[-1] == "[DONE]"
            texts.add("".join((json.loads(e)["choices"][0]["delta"].get("content") or "")
                              for e in ev[:-1] if json.loads(e)["choices"]))
        else:
            texts.add(r[3]["choices"][0]["message"]["content"])
    assert len(texts) == 1, texts
    assert m.stats()["requests"] == 1
    s.stop()


def test_twenty_streams_one_call():
    m = Mock()
    s = Sluice(base_config(m, cache={"enabled": True}))
    m.config(delay_ms=200, stream_chunks=8, chunk_delay_ms=30)
    u = s.url + "/v1/chat/completions"
    res = run_parallel(20, lambda i: stream(u, chat("storm", stream=True)))
    assert all(r[0] == 200 and r[2][-1] == "[DONE]" for r in res)
    assert len({tuple(r[2]) for r in res}) == 1
    assert m.stats()["requests"] == 1
    s.stop()


def _open_stream(port, body):
    s = socket.create_connection(("127.0.0.1", port))
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    return s


def test_leader_leaves_followers_complete():
    m = Mock()
    s = Sluice(base_config(m, cache={"enabled": True}))
    m.config(delay_ms=100, stream_chunks=6, chunk_delay_ms=100)
    leader = _open_stream(s.port, chat("leader", stream=True))
    time.sleep(0.05)
    res = {}
    t = threading.Thread(target=lambda: res.setdefault("f", stream(s.url + "/v1/chat/completions", chat("leader", stream=True))))
    t.start()
    time.sleep(0.3)
    leader.close()
    t.join(10)
    st, _, ev, _ = res["f"]
    assert st == 200 and ev[-1] == "[DONE]", ev
    assert m.stats()["disconnects"] == 0, "the upstream call was cut"
    s.stop()


def test_last_waiter_leaving_cancels_upstream():
    m = Mock()
    # streams.resume_s > 0 (the default) keeps a dropped stream running for a resume
    s = Sluice(base_config(m, cache={"enabled": True}, streams={"resume_s": 0}))
    m.config(delay_ms=100, stream_chunks=20, chunk_delay_ms=100)
    a = _open_stream(s.port, chat("abandon", stream=True))
    time.sleep(0.05)
    b = _open_stream(s.port, chat("abandon", stream=True))
    time.sleep(0.3)
    a.close()
    time.sleep(0.1)
    b.close()
    deadline = time.time() + 2
    while time.time() < deadline and m.stats()["disconnects"] == 0:
        time.sleep(0.05)
    assert m.stats()["disconnects"] == 1 and m.stats()["requests"] == 1
    log = s.wait_log(2)
    assert all(l["status"] == 499 for l in log), log
    s.stop()


def test_error_reaches_every_waiter_and_is_not_cached():
    m = Mock()
    s = Sluice(base_config(m, cache={"enabled": True}, retries={"max": 0, "base_ms": 1}))
    m.config(delay_ms=300, status=503)
    u = s.url + "/v1/chat/completions"
    res = run_parallel(8, lambda i: post_json(u, chat("fails")))
    assert all(r[0] == 503 and "error" in r[2] for r in res), [r[0] for r in res]
    assert m.stats()["requests"] == 1
    m.config(status=200, delay_ms=0)
    assert post_json(u, chat("fails"))[0] == 200
    s.stop()


def test_two_instances_one_call():
    from harness import Redis
    m, r = Mock(), Redis()
    c = base_config(m, cache={"enabled": True}, redis={"url": r.url})
    a, b = Sluice(c), Sluice(c)
    time.sleep(0.3)
    m.config(delay_ms=500)
    res = run_parallel(40, lambda i: post_json((a if i % 2 else b).url + "/v1/chat/completions", chat("cross")))
    assert all(x[0] == 200 for x in res), [x[0] for x in res]
    assert len({json.dumps(x[2], sort_keys=True) for x in res}) == 1
    assert m.stats()["requests"] == 1, m.stats()
    a.stop(), b.stop()


def test_lock_holder_killed_waiters_served():
    from harness import Redis
    m, r = Mock(), Redis()
    c = base_config(m, cache={"enabled": True}, redis={"url": r.url})
    a, b = Sluice(c), Sluice(c)
    time.sleep(0.3)
    m.config(delay_ms=800)
    res = {}
    ta = threading.Thread(target=lambda: res.setdefault("a", _try(lambda: post_json(a.url + "/v1/chat/completions", chat("holder")))))
    ta.start()
    time.sleep(0.2)  # a holds the lock now
    tb = [threading.Thread(target=lambda i=i: res.setdefault("b%d" % i, post_json(b.url + "/v1/chat/completions", chat("holder"))))
          for i in range(5)]
    [t.start() for t in tb]
    time.sleep(0.2)
    a.proc.kill()
    m.config(delay_ms=0)
    [t.join(15) for t in tb]
    for i in range(5):
        assert res["b%d" % i][0] == 200, res["b%d" % i]
    r.cmd("DEL", "x")
    b.stop()


def _try(fn):
    try:
        return fn()
    except Exception as e:
        return e


def _lock_keys(r):
    return [k for k in r.cmd("KEYS", "*") if (k.decode() if isinstance(k, bytes) else k).endswith(":lock")]


def test_dead_holder_lease_taken_over_within_3s():
    """Issue 17 item 4: the lock is a short lease (coalesce.lease_ms, default
    2000), not timeouts.first_byte_ms: a SIGKILLed holder's waiters on the
    other instance are answered within 3 s."""
    from harness import Redis
    m, r = Mock(), Redis()
    c = base_config(m, cache={"enabled": True}, redis={"url": r.url}, retries={"max": 0, "base_ms": 1},
                    timeouts={"connect_ms": 500, "first_byte_ms": 30000, "total_ms": 30000, "idle_ms": 30000})
    a, b = Sluice(c), Sluice(c)
    time.sleep(0.3)
    m.config(delay_ms=20000)
    res, done = {}, {}
    ta = threading.Thread(target=lambda: _try(lambda: post_json(a.url + "/v1/chat/completions", chat("lease"), timeout=30)))
    ta.start()
    deadline = time.time() + 3
    while time.time() < deadline and not _lock_keys(r):
        time.sleep(0.02)
    assert _lock_keys(r), "the holder never took the lock"

    def follow(i):
        res[i] = post_json(b.url + "/v1/chat/completions", chat("lease"), timeout=30)
        done[i] = time.time()
    tb = [threading.Thread(target=follow, args=(i,)) for i in range(3)]
    [t.start() for t in tb]
    time.sleep(0.5)
    assert not res, "followers answered before the holder died"
    m.config(delay_ms=0)
    a.proc.kill()
    killed = time.time()
    [t.join(30) for t in tb]
    for i in range(3):
        assert res[i][0] == 200, res[i]
        assert done[i] - killed < 3.0, "follower %d waited %.1f s after the holder died" % (i, done[i] - killed)
    b.stop()


def test_live_holder_renews_lease_past_its_ttl():
    """Issue 17 item 4: a call longer than the lease keeps its lock (the holder
    renews it): the other instance's waiters do not call upstream too."""
    from harness import Redis
    m, r = Mock(), Redis()
    c = base_config(m, cache={"enabled": True}, redis={"url": r.url}, coalesce={"lease_ms": 600},
                    timeouts={"connect_ms": 500, "first_byte_ms": 10000, "total_ms": 10000, "idle_ms": 10000})
    a, b = Sluice(c), Sluice(c)
    time.sleep(0.3)
    m.config(delay_ms=2500)
    res = {}
    ta = threading.Thread(target=lambda: res.setdefault("a", post_json(a.url + "/v1/chat/completions", chat("renew"), timeout=20)))
    ta.start()
    deadline = time.time() + 3
    while time.time() < deadline and not _lock_keys(r):
        time.sleep(0.02)
    tb = [threading.Thread(target=lambda i=i: res.setdefault("b%d" % i, post_json(b.url + "/v1/chat/completions", chat("renew"), timeout=20)))
          for i in range(3)]
    [t.start() for t in tb]
    ta.join(20)
    [t.join(20) for t in tb]
    assert all(v[0] == 200 for v in res.values()) and len(res) == 4, {k: v[0] for k, v in res.items()}
    assert len({json.dumps(v[2], sort_keys=True) for v in res.values()}) == 1
    assert m.stats()["requests"] == 1, m.stats()
    assert not _lock_keys(r), "the lock outlived the flight"
    a.stop(), b.stop()

def test_plain_followers_of_a_stream_get_one_object():
    """Issue 18: a streaming flight carries no assembler of its own when its
    leader's proxy assembles the stream for the cache; when it does not (a
    translated stream), one is made for the first plain follower, fed the
    bytes so far. Followers before the head and mid-stream get the object."""
    for kind in ("openai", "anthropic"):
        m = Mock()
        c = base_config(m, cache={"enabled": True})
        c["providers"] = [{"name": "p", "kind": kind, "base_url": m.url + ("/v1" if kind == "openai" else ""),
                           "api_key": "sk-prov", "models": ["*"]}]
        s = Sluice(c)
        m.config(delay_ms=300, stream_chunks=6, chunk_delay_ms=100)
        u = s.url + "/v1/chat/completions"
        out = {}

        def lead():
            out["lead"] = stream(u, chat("stream then plain", stream=True))
        t = threading.Thread(target=lead)
        t.start()
        time.sleep(0.15)  # before the head
        early = threading.Thread(target=lambda: out.__setitem__("early", post_json(u, chat("stream then plain"))))
        early.start()
        time.sleep(0.45)  # mid-stream
        late = post_json(u, chat("stream then plain"))
        early.join(10)
        t.join(10)
        ev = out["lead"][2]
        assert ev[-1] == "[DONE]", (kind, ev)
        text = "".join((json.loads(e)["choices"][0]["delta"].get("content") or "")
                       for e in ev[:-1] if json.loads(e)["choices"])
        for name, r in (("early", out["early"]), ("late", late)):
            assert r[0] == 200 and r[1]["x-sluice-cache"] == "coalesced", (kind, name, r[:2])
            assert r[2]["object"] == "chat.completion" and r[2]["choices"][0]["message"]["content"] == text, (kind, name, r[2])
        assert m.stats()["requests"] == 1, kind
        s.stop()


def _coalescing(s):
    return json.loads(request("GET", s.url + "/health")[2])["coalescing"]


def test_mid_stream_joiner_replayed_from_the_recording():
    """Issue 18 (memory per open stream): a streaming flight keeps no replay
    copy of its own: a late joiner is replayed the stream so far from the
    leader's recording (kept for resumes anyway), then gets the live events.
    /health's
    coalescing.replay_bytes counts the flights' own copies: 0 here."""
    m = Mock()
    s = Sluice(base_config(m, cache={"enabled": True}))
    m.config(stream_chunks=8, chunk_delay_ms=150)
    u = s.url + "/v1/chat/completions"
    out = {}
    t = threading.Thread(target=lambda: out.__setitem__("lead", stream(u, chat("replay me", stream=True))))
    t.start()
    time.sleep(0.5)  # three or so chunks in
    co = _coalescing(s)
    assert co["flights"] == 1 and co["replay_bytes"] == 0, co
    late = stream(u, chat("replay me", stream=True))
    t.join(10)
    lead = out["lead"]
    assert lead[0] == 200 and late[0] == 200
    assert late[1]["x-sluice-cache"] == "coalesced", late[1]
    assert lead[2][-1] == "[DONE]" and late[2] == lead[2], (lead[2], late[2])
    # the joiner's own ids number every event from 1, the replayed ones too
    ids = [l for l in late[3].decode().split("\n") if l.startswith("id: ")]
    assert len(ids) == len(late[2]) and ids[0].endswith("-1") and ids[-1].endswith("-%d" % len(ids)), ids
    assert m.stats()["requests"] == 1
    assert _coalescing(s)["flights"] == 0
    s.stop()


def test_replay_bound_still_sends_late_joiners_upstream():
    """coalesce.max_replay_bytes bounds what a late joiner is replayed (now
    counted, the bytes being the recording's): past it, a joiner goes upstream
    on its own, and gets a whole stream."""
    m = Mock()
    s = Sluice(base_config(m, cache={"enabled": True}, coalesce={"max_replay_bytes": 200}))
    m.config(stream_chunks=8, chunk_delay_ms=150)
    u = s.url + "/v1/chat/completions"
    out = {}
    t = threading.Thread(target=lambda: out.__setitem__("lead", stream(u, chat("too long to replay", stream=True))))
    t.start()
    time.sleep(0.6)  # a few chunks: more than 200 bytes
    late = stream(u, chat("too long to replay", stream=True))
    t.join(10)
    assert out["lead"][2][-1] == "[DONE]" and late[0] == 200 and late[2][-1] == "[DONE]"
    assert late[1]["x-sluice-cache"] != "coalesced", late[1]
    assert m.stats()["requests"] == 2
    s.stop()
