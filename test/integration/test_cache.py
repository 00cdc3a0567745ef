"""Issue 3: the response cache, L1 and Redis L2."""
import json, threading, time
from harness import Mock, Redis, Sluice, base_config, chat, post_json, stream


def cfg(m, redis=None, cache=None, **over):
    c = base_config(m, cache=dict({"enabled": True, "ttl_s": 60}, **(cache or {})), **over)
    if redis:
        c["redis"] = {"url": redis.url, "timeout_ms": 50}
    return c


def content_of_stream(events):
    out = ""
    for e in events[:-1]:
        c = json.loads(e)
        if c["choices"]:
            out += c["choices"][0]["delta"].get("content") or ""
    return out


def test_hit_after_miss_l1():
    m = Mock()
    s = Sluice(cfg(m))
    u = s.url + "/v1/chat/completions"
    st, h, a, _ = post_json(u, chat("cache me"))
    assert st == 200 and h["x-sluice-cache"] == "miss"
    st, h, b, _ = post_json(u, json.dumps({"messages": [{"content": "cache me", "role": "user"}], "model": "gpt-4o-mini"}))
    assert st == 200 and h["x-sluice-cache"] == "hit", h
    assert "age" in h and h["x-sluice-cost-usd"] == "0.00000000"
    assert a == b
    assert m.stats()["requests"] == 1
    log = s.wait_log(2)
    assert log[1]["cache"] == "hit" and log[1]["saved_usd"] > 0 and log[1]["cost_usd"] == 0
    s.stop()


def test_stream_served_from_plain_entry_and_reverse():
    m = Mock()
    s = Sluice(cfg(m))
    u = s.url + "/v1/chat/completions"
    _, _, plain, _ = post_json(u, chat("twin one"))
    st, h, ev, _ = stream(u, chat("twin one", stream=True, stream_options={"include_usage": True}))
    assert h["x-sluice-cache"] == "hit" and ev[-1] == "[DONE]"
    assert content_of_stream(ev) == plain["choices"][0]["message"]["content"]
    assert "usage" in json.loads(ev[-2])
    st, h, ev, _ = stream(u, chat("twin two", stream=True))
    assert h["x-sluice-cache"] == "miss"
    st, h, j, _ = post_json(u, chat("twin two"))
    assert h["x-sluice-cache"] == "hit", h
    assert j["choices"][0]["message"]["content"] == content_of_stream(ev)
    assert j["object"] == "chat.completion" and j["usage"]["completion_tokens"] > 0
    assert m.stats()["requests"] == 2
    s.stop()


def test_cache_control_and_ttl_header():
    m = Mock()
    s = Sluice(cfg(m))
    u = s.url + "/v1/chat/completions"
    assert post_json(u, chat("cc"), {"Cache-Control": "no-store"})[1]["x-sluice-cache"] == "bypass"
    assert post_json(u, chat("cc"))[1]["x-sluice-cache"] == "miss"  # no-store stored nothing
    assert post_json(u, chat("cc"), {"Cache-Control": "no-cache"})[1]["x-sluice-cache"] == "miss"
    assert post_json(u, chat("cc"))[1]["x-sluice-cache"] == "hit"
    assert m.stats()["requests"] == 3  # no-store, miss, no-cache: three calls
    post_json(u, chat("short"), {"x-sluice-cache-ttl": "1"})
    assert post_json(u, chat("short"))[1]["x-sluice-cache"] == "hit"
    time.sleep(1.2)
    assert post_json(u, chat("short"))[1]["x-sluice-cache"] == "miss"
    s.stop()


def test_errors_and_truncated_streams_not_cached():
    m = Mock()
    s = Sluice(cfg(m, retries={"max": 0, "base_ms": 1}))
    u = s.url + "/v1/chat/completions"
    m.config(status=500)
    assert post_json(u, chat("err"))[0] == 500
    m.config(status=200)
    assert post_json(u, chat("err"))[1]["x-sluice-cache"] == "miss"
    m.config(drop_after_chunks=2)
    stream(u, chat("cut", stream=True))
    m.config(drop_after_chunks=0)
    assert post_json(u, chat("cut"))[1]["x-sluice-cache"] == "miss"
    s.stop()


def test_two_instances_share_redis():
    m, r = Mock(), Redis()
    a, b = Sluice(cfg(m, r)), Sluice(cfg(m, r))
    time.sleep(0.3)
    st, h, j1, _ = post_json(a.url + "/v1/chat/completions", chat("shared"))
    assert h["x-sluice-cache"] == "miss"
    time.sleep(0.1)
    st, h, j2, _ = post_json(b.url + "/v1/chat/completions", chat("shared"))
    assert h["x-sluice-cache"] == "hit", h
    assert j1 == j2 and m.stats()["requests"] == 1
    log = b.wait_log(1)
    assert log[0]["cache_layer"] == "l2"
    keys = r.cmd("KEYS", "sluice:{c:*}:v2")
    assert len(keys) == 1 and r.cmd("PTTL", keys[0]) > 0
    a.stop(), b.stop()


def test_foreign_bytes_in_redis_are_a_miss_and_l1_keeps_the_shared_ttl():
    m, r = Mock(), Redis()
    a, b = Sluice(cfg(m, r)), Sluice(cfg(m, r))
    time.sleep(0.3)
    u = "/v1/chat/completions"

    def stored_by_a(prompt):
        before = set(r.cmd("KEYS", "sluice:{c:*}:v2"))
        assert post_json(a.url + u, chat(prompt))[1]["x-sluice-cache"] == "miss"
        time.sleep(0.1)
        (key,) = set(r.cmd("KEYS", "sluice:{c:*}:v2")) - before
        return key

    for i, junk in enumerate((b"x", b"\0" * 16 + b"<html>oops</html>", b"\0" * 16 + b"{not json")):
        r.cmd("SET", stored_by_a("plain %d" % i), junk, "PX", 60000)
        st, h, out, _ = post_json(b.url + u, chat("plain %d" % i))
        assert st == 200 and h["x-sluice-cache"] == "miss", (junk, h)
        assert out["choices"][0]["message"]["content"]
        r.cmd("SET", stored_by_a("stream %d" % i), junk, "PX", 60000)
        st, h, ev, _ = stream(b.url + u, chat("stream %d" % i, stream=True))
        assert st == 200 and h["x-sluice-cache"] == "miss", (junk, h)
        assert content_of_stream(ev) and ev[-1] == "[DONE]", ev
    # shaped like JSON but not JSON: a plain hit passes it on (no parse on a
    # hit), and a stream, which must parse it to replay it, takes it as a miss,
    # from L1 as from Redis
    fresh = int(time.time() * 1000).to_bytes(8, "little") + b"\0" * 8  # stored now: L1 keeps a copy
    r.cmd("SET", stored_by_a("shaped"), fresh + b"{not json}", "PX", 60000)
    assert post_json(b.url + u, chat("shaped"))[1]["x-sluice-cache"] == "hit"  # now in b's L1 too
    st, h, ev, _ = stream(b.url + u, chat("shaped", stream=True), timeout=5)
    assert st == 200 and h["x-sluice-cache"] == "miss", h
    assert content_of_stream(ev) and ev[-1] == "[DONE]", ev
    # an entry copied from Redis lives in L1 only as long as its shared copy
    key = stored_by_a("old")
    entry = r.cmd("GET", key)
    old = int.from_bytes(entry[:8], "little") - 59_500  # stored 59.5 s ago, TTL 60 s
    r.cmd("SET", key, old.to_bytes(8, "little") + entry[8:], "PX", 500)
    st, h, _, _ = post_json(b.url + u, chat("old"))
    assert h["x-sluice-cache"] == "hit" and h["age"] == "59", h
    time.sleep(0.7)
    st, h, _, _ = post_json(b.url + u, chat("old"))
    assert h["x-sluice-cache"] == "miss", "L1 kept an entry past its shared TTL"
    a.stop(), b.stop()


def test_redis_killed_and_hung_requests_still_fast():
    m, r = Mock(), Redis()
    s = Sluice(cfg(m, r))
    time.sleep(0.3)
    u = s.url + "/v1/chat/completions"
    r.stop_signal()
    for i in range(5):
        t0 = time.time()
        st, _, _, _ = post_json(u, chat("hung %d" % i))
        assert st == 200 and time.time() - t0 < 0.5, time.time() - t0
    r.cont_signal()
    r.kill()
    for i in range(5):
        t0 = time.time()
        st, _, _, _ = post_json(u, chat("dead %d" % i))
        assert st == 200 and time.time() - t0 < 0.5
    r.start()
    time.sleep(1.5)  # reconnect with backoff
    post_json(u, chat("back"))
    time.sleep(0.1)
    assert len(r.cmd("KEYS", "sluice:{c:*}:v2")) >= 1, "L2 did not come back"
    s.stop()


def entry_keys(r):
    return set(r.cmd("KEYS", "sluice:{c:*}:v2"))


def test_ttl_header_clamped_and_checked():
    """Issue 17 item 5: 9223372036854775807 overflowed the milliseconds (the
    sanitizer build aborted) and 9300000000000 stored an entry for 300,000
    years; both are clamped to cache.max_ttl_s. Non-numbers are a 400."""
    m, r = Mock(), Redis()
    s = Sluice(cfg(m, r))
    time.sleep(0.3)
    u = s.url + "/v1/chat/completions"
    for i, ttl in enumerate(("9223372036854775807", "9300000000000", "99999999999999999999999")):
        before = entry_keys(r)
        st, h, j, raw = post_json(u, chat("long ttl %d" % i), {"x-sluice-cache-ttl": ttl})
        assert st == 200 and h["x-sluice-cache"] == "miss", raw
        time.sleep(0.1)
        (key,) = entry_keys(r) - before
        pttl = r.cmd("PTTL", key)
        assert 2592000000 - 60000 < pttl <= 2592000000, pttl  # 30 days, the default bound
        assert post_json(u, chat("long ttl %d" % i))[1]["x-sluice-cache"] == "hit"
    for bad in ("abc", "-5", "12s", "1.5", "0x10"):
        st, h, j, raw = post_json(u, chat("bad ttl"), {"x-sluice-cache-ttl": bad})
        assert st == 400, (bad, raw)
        e = j["error"]
        assert e["param"] == "x-sluice-cache-ttl" and e["type"] == "invalid_request_error", e
        assert e["code"] == "invalid_header" and "whole number of seconds" in e["message"], e
    assert post_json(u, chat("zero ttl"), {"x-sluice-cache-ttl": "0"})[0] == 200  # stores nothing
    assert post_json(u, chat("zero ttl"))[1]["x-sluice-cache"] == "miss"
    s.stop()
    # a configured bound
    s = Sluice(cfg(m, r, cache={"max_ttl_s": 100}))
    time.sleep(0.3)
    before = entry_keys(r)
    post_json(s.url + "/v1/chat/completions", chat("bounded"), {"x-sluice-cache-ttl": "5000"})
    time.sleep(0.1)
    (key,) = entry_keys(r) - before
    assert 90000 < r.cmd("PTTL", key) <= 100000
    s.stop()


def test_sampled_answers_cached_by_default_and_cache_sampled_false():
    """Issue 17 item 13: answers to sampled requests (temperature > 0 or
    absent) are cached by default; cache.sampled: false keeps only
    temperature 0 (and embeddings, which are not sampled)."""
    m = Mock()
    s = Sluice(cfg(m))
    u = s.url + "/v1/chat/completions"
    for body in (chat("warm", temperature=0.9), chat("absent")):
        assert post_json(u, body)[1]["x-sluice-cache"] == "miss"
        assert post_json(u, body)[1]["x-sluice-cache"] == "hit"
    s.stop()
    m.reset()
    s = Sluice(cfg(m, cache={"sampled": False}))
    u = s.url + "/v1/chat/completions"
    for body in (chat("warm", temperature=0.9), chat("absent"), chat("null", temperature=None)):
        assert post_json(u, body)[1]["x-sluice-cache"] == "bypass"
        assert post_json(u, body)[1]["x-sluice-cache"] == "bypass"
    assert m.stats()["requests"] == 6
    for body in (chat("cold", temperature=0), chat("cold float", temperature=0.0)):
        assert post_json(u, body)[1]["x-sluice-cache"] == "miss"
        assert post_json(u, body)[1]["x-sluice-cache"] == "hit"
    e = s.url + "/v1/embeddings"
    assert post_json(e, {"model": "gpt-4o-mini", "input": "x"})[1]["x-sluice-cache"] == "miss"
    assert post_json(e, {"model": "gpt-4o-mini", "input": "x"})[1]["x-sluice-cache"] == "hit"
    st, h, _, _ = stream(u, chat("warm stream", temperature=1, stream=True))
    assert st == 200 and h["x-sluice-cache"] == "bypass"
    s.stop()


def test_cache_scope_tenant_or_user():
    """Issue 17 item 13: by default end users of one tenant share entries
    (`user` is not in the key); cache.scope: user puts the end user (header
    x-sluice-user, else the body's `user`) into the key."""
    m = Mock()
    s = Sluice(cfg(m))
    u = s.url + "/v1/chat/completions"
    assert post_json(u, chat("shared q", user="alice"))[1]["x-sluice-cache"] == "miss"
    assert post_json(u, chat("shared q", user="bob"))[1]["x-sluice-cache"] == "hit"
    assert post_json(u, chat("shared q"), {"x-sluice-user": "carol"})[1]["x-sluice-cache"] == "hit"
    s.stop()
    s = Sluice(cfg(m, cache={"scope": "user"}))
    u = s.url + "/v1/chat/completions"

    def outcome(body, headers=None):
        return post_json(u, body, headers)[1]["x-sluice-cache"]

    assert outcome(chat("q", user="alice")) == "miss"
    assert outcome(chat("q", user="alice")) == "hit"
    assert outcome(chat("q", user="bob")) == "miss"
    assert outcome(chat("q"), {"x-sluice-user": "alice"}) == "hit"  # the same end user
    assert outcome(chat("q", user="alice"), {"x-sluice-user": "dave"}) == "miss"  # header wins
    assert outcome(chat("q")) == "miss"  # no user: the tenant's user-less scope
    assert outcome(chat("q")) == "hit"
    # a user name cannot spell another user's scope
    assert outcome(chat("q", user="u5:alice")) == "miss"
    s.stop()

def _l1(s):
    from harness import request
    return json.loads(request("GET", s.url + "/health")[2])["cache"]


def test_exact_bytes_fast_path():
    """Issue 18: bytes answered from L1 before are answered again without the
    parse; auth, limits, metering and the log still run; other tenants, other
    bytes and cache headers take the full path; the alias dies with its entry."""
    m = Mock()
    keys = [{"key": "sk-a", "tenant": "a", "rpm": 3}, {"key": "sk-b", "tenant": "b"}]
    s = Sluice(cfg(m, keys=keys))
    u = s.url + "/v1/chat/completions"
    a, b = {"Authorization": "Bearer sk-a"}, {"Authorization": "Bearer sk-b"}
    body = json.dumps(chat("exact bytes"))
    ttl1 = dict(a, **{"x-sluice-cache-ttl": "1"})
    st, h, first, _ = post_json(u, body, ttl1)  # stored for 1 s; a ttl header: no alias
    assert st == 200 and h["x-sluice-cache"] == "miss" and _l1(s)["aliases"] == 0
    st, h, second, _ = post_json(u, body, a)  # full-path hit: adds the alias
    assert h["x-sluice-cache"] == "hit" and _l1(s)["aliases"] == 1 and _l1(s)["exact_hits"] == 0
    st, h, third, _ = post_json(u, body, a)  # the fast path
    assert st == 200 and h["x-sluice-cache"] == "hit" and third == first == second, h
    assert h["x-sluice-cost-usd"] == "0.00000000" and "age" in h
    assert _l1(s)["exact_hits"] == 1
    assert post_json(u, body, {"Authorization": "Bearer sk-wrong"})[0] == 401  # auth still runs
    st, h, _, _ = post_json(u, body, a)  # limits still run: rpm 3 spent
    assert st == 429, (st, h)
    st, h, _, _ = post_json(u, body, b)  # another tenant: its own entry
    assert h["x-sluice-cache"] == "miss"
    n = _l1(s)["exact_hits"]
    st, h, _, _ = post_json(u, body, dict(b, **{"Cache-Control": "no-cache"}))
    assert h["x-sluice-cache"] == "miss" and _l1(s)["exact_hits"] == n
    ev = stream(u, json.dumps(chat("exact bytes", stream=True)), b)[2]  # the stream twin
    assert ev[-1] == "[DONE]" and m.stats()["requests"] == 3
    log = s.wait_log(9)
    fast = log[2]
    assert fast["cache"] == "hit" and fast["model"] == "gpt-4o-mini" and fast["tenant"] == "a"
    assert fast["saved_usd"] > 0 and fast["prompt_tokens"] == log[0]["prompt_tokens"], fast
    time.sleep(1.1)  # tenant a's entry expired: its alias with it, the full path asks upstream
    st, h, again, _ = post_json(u, body, {"Authorization": "Bearer sk-b"})
    assert h["x-sluice-cache"] == "hit"  # b's entry (60 s) still there
    s.stop()
    s2 = Sluice(cfg(m, keys=[{"key": "sk-a", "tenant": "a"}]))
    u2 = s2.url + "/v1/chat/completions"
    post_json(u2, body, ttl1)
    post_json(u2, body, a)
    assert _l1(s2)["aliases"] == 1
    time.sleep(1.1)
    before = m.stats()["requests"]
    st, h, _, _ = post_json(u2, body, a)
    assert st == 200 and h["x-sluice-cache"] == "miss" and m.stats()["requests"] == before + 1
    assert _l1(s2)["exact_hits"] == 0
    s2.stop()
