"""Issue 20: the semantic cache — paraphrases answered from the cache, never the
opposite answer, shared by every instance (real redis-server, the mock)."""
import json, time
from harness import Mock, Redis, Sluice, base_config, chat, post_json, request, stream

Q = "What's the capital of France?"
PARA = "what is france's capital"


def cfg(m, redis=None, semantic=None, cache=None, **over):
    sem = dict({"enabled": True, "threshold": 0.95}, **(semantic or {}))
    c = base_config(m, cache=dict({"enabled": True, "ttl_s": 60, "semantic": sem}, **(cache or {})),
                    **over)
    c["prices"]["text-embedding-3-small"] = {"input": 0.02, "output": 0}
    if redis:
        c["redis"] = {"url": redis.url, "timeout_ms": 200}
    return c


def ask(s, text, model="gpt-4o-mini", headers=None, **kw):
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat(text, model=model, **kw), headers)
    assert st == 200, (st, j)
    return h, j


def semantic_health(s):
    return json.loads(request("GET", s.url + "/health")[2])["semantic"]


def answers(m):
    """Chat calls the provider answered (embeddings are not answers)."""
    return m.stats()["by_path"]["/v1/chat/completions"]


def test_paraphrase_is_a_semantic_hit():
    m = Mock()
    s = Sluice(cfg(m))
    h, first = ask(s, Q)
    assert h["x-sluice-cache"] == "miss"
    h, again = ask(s, PARA)
    assert h["x-sluice-cache"] == "semantic", h
    assert float(h["x-sluice-similarity"]) >= 0.95 and h["x-sluice-cost-usd"] == "0.00000000"
    assert again == first and answers(m) == 1
    log = [l for l in s.wait_log(4) if l["path"] == "/v1/chat/completions"]
    hit = log[-1]
    assert hit["cache"] == "semantic" and hit["similarity"] >= 0.95, hit
    assert hit["served_from"] == log[0]["request_id"] and hit["saved_usd"] > 0, hit
    emb = [l["cost_usd"] for l in s.access_log() if l["path"] == "/v1/embeddings"]
    assert emb[0] > 0 and log[0]["saved_usd"] == -emb[0], (log[0], emb)  # the overhead
    assert abs(hit["saved_usd"] - (log[0]["cost_usd"] - emb[1])) < 1e-12, (hit, emb)
    emb = [l for l in s.access_log() if l["path"] == "/v1/embeddings"]
    assert len(emb) == 2 and emb[0]["request_id"].endswith("-emb"), emb
    st, _, raw = request("GET", s.url + "/stats")
    totals = json.loads(raw)["totals"]
    assert totals["semantic_hits"] == 1 and totals["semantic_saved_usd"] > 0, totals
    s.stop()


def test_negated_and_renumbered_questions_are_refused_by_the_guard():
    m = Mock()
    s = Sluice(cfg(m))
    ask(s, Q)
    h, _ = ask(s, "What is not the capital of France?")  # 0.99 by the mock's vectors
    assert h["x-sluice-cache"] == "miss" and "x-sluice-similarity" not in h, h
    ask(s, "How many moons did Jupiter have in 2020?")
    h, _ = ask(s, "How many moons did Jupiter have in 2021?")
    assert h["x-sluice-cache"] == "miss", h
    assert answers(m) == 4
    _, _, raw = request("GET", s.url + "/metrics")
    assert 'sluice_cache_lookups_total{result="semantic_refused"} 2' in raw.decode(), raw.decode()
    s.stop()


def test_other_tenant_system_prompt_or_model_is_a_miss():
    m = Mock()
    keys = [{"key": "sk-a", "tenant": "a"}, {"key": "sk-b", "tenant": "b"},
            {"key": "sk-off", "tenant": "a", "semantic": False}]
    s = Sluice(cfg(m, keys=keys))
    A, B = {"Authorization": "Bearer sk-a"}, {"Authorization": "Bearer sk-b"}
    ask(s, Q, headers=A)
    assert ask(s, PARA, headers=B)[0]["x-sluice-cache"] == "miss"
    assert ask(s, PARA, model="gpt-4o", headers=A)[0]["x-sluice-cache"] == "miss"
    sys_body = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be terse."},
                                                     {"role": "user", "content": PARA}]}
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", sys_body, A)
    assert st == 200 and h["x-sluice-cache"] == "miss", (st, j)
    # the key that turns it off, and the request header that does
    off = {"Authorization": "Bearer sk-off"}
    assert ask(s, "what's france's capital?", headers=off)[0]["x-sluice-cache"] == "miss"
    h, _ = ask(s, "capital of France?", headers=dict(A, **{"x-sluice-cache": "semantic-off"}))
    assert h["x-sluice-cache"] == "miss", h
    assert ask(s, "What is France's capital?", headers=A)[0]["x-sluice-cache"] == "semantic"
    s.stop()


def test_expired_entry_is_a_miss():
    m = Mock()
    s = Sluice(cfg(m, cache={"ttl_s": 1}))
    ask(s, Q)
    assert ask(s, PARA)[0]["x-sluice-cache"] == "semantic"
    time.sleep(1.3)
    assert ask(s, "What is the capital of France")[0]["x-sluice-cache"] == "miss"
    s.stop()


def test_stream_replayed_from_a_semantic_hit():
    m = Mock()
    s = Sluice(cfg(m))
    _, first = ask(s, Q)
    st, h, ev, _ = stream(s.url + "/v1/chat/completions", chat(PARA, stream=True))
    assert st == 200 and h["x-sluice-cache"] == "semantic" and ev[-1] == "[DONE]", (h, ev)
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                   for e in ev[:-1] if json.loads(e)["choices"])
    assert text == first["choices"][0]["message"]["content"]
    s.stop()


def test_embedding_provider_down_skips_the_level():
    m = Mock()
    c = cfg(m)
    c["providers"].insert(0, {"name": "embed", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                              "api_key": "x", "models": ["text-embedding-3-small"]})
    c["retries"] = {"max": 0, "base_ms": 1}
    s = Sluice(c)
    h, a = ask(s, Q)
    assert h["x-sluice-cache"] == "miss"
    h, b = ask(s, Q)
    assert h["x-sluice-cache"] == "hit" and a == b  # the exact cache still answers
    h, _ = ask(s, PARA)
    assert h["x-sluice-cache"] == "miss"  # and the provider: never an error
    s.stop()


def test_shared_through_redis_and_rebuilt_at_start():
    m, r = Mock(), Redis()
    a, b = Sluice(cfg(m, redis=r)), Sluice(cfg(m, redis=r))
    time.sleep(0.3)
    _, first = ask(a, Q)
    t0 = time.time()
    while time.time() < t0 + 1 and not r.cmd("KEYS", "*:sv1"):
        time.sleep(0.02)  # written after the answer went out
    keys = r.cmd("KEYS", "*:sv1")
    assert len(keys) == 1 and 0 < r.cmd("PTTL", keys[0]) <= 60000, keys  # beside the entry, its TTL
    t0 = time.time()
    while time.time() < t0 + 1.0 and semantic_health(b)["learned"] < 1:
        time.sleep(0.05)
    assert semantic_health(b)["learned"] == 1, semantic_health(b)  # learned within a second
    h, got = ask(b, PARA)
    assert h["x-sluice-cache"] == "semantic" and got == first, h
    b.stop()
    b2 = Sluice(cfg(m, redis=r))
    t0 = time.time()
    while time.time() < t0 + 3 and not semantic_health(b2)["rebuilt"]:
        time.sleep(0.05)
    assert semantic_health(b2)["entries"] == 1, semantic_health(b2)  # A's, from Redis
    h, got = ask(b2, "what's france's capital?")
    assert h["x-sluice-cache"] == "semantic" and got == first, h
    assert answers(m) == 1
    a.stop()
    b2.stop()


def test_lru_bound_and_dashboard():
    m = Mock()
    s = Sluice(cfg(m, semantic={"max_entries": 2}))
    ask(s, Q)
    ask(s, "How tall is the Eiffel Tower?")
    ask(s, "Who wrote Hamlet?")  # the third entry evicts the least recently used (Q)
    assert json.loads(request("GET", s.url + "/health")[2])["semantic"]["entries"] == 2
    h = ask(s, PARA)[0]
    assert h["x-sluice-cache"] == "miss", h  # (and now evicts the tower)
    assert ask(s, "who wrote Hamlet")[0]["x-sluice-cache"] == "semantic"
    ui = request("GET", s.url + "/ui")[2].decode()
    assert 'id="semantic_hits"' in ui and "semantic_saved_usd" in ui
    s.stop()


def test_config_checks():
    m = Mock()
    for sem, word in [({"threshold": 2}, "cache.semantic.threshold"),
                      ({"max_entries": 0}, "cache.semantic.max_entries"),
                      ({"bogus": 1}, "cache.semantic.bogus")]:
        s = Sluice(cfg(m, semantic=sem), wait=False)
        assert s.proc.wait(10) != 0 and word in s.stderr(), (sem, s.stderr())
    c = cfg(m, keys=[{"key": "sk-a", "tenant": "a", "semantic": "maybe"}])
    s = Sluice(c, wait=False)
    assert s.proc.wait(10) != 0 and "keys[0].semantic" in s.stderr(), s.stderr()


def test_slow_embedding_is_skipped_not_waited_for():
    m = Mock()
    s = Sluice(cfg(m, semantic={"timeout_ms": 50}))
    ask(s, Q)
    m.config(delay_ms=400)
    t0 = time.time()
    h, _ = ask(s, PARA)  # the embedding is late: the provider answers instead
    assert h["x-sluice-cache"] == "miss" and time.time() - t0 < 1.5, h
    _, _, raw = request("GET", s.url + "/metrics")
    assert 'sluice_cache_lookups_total{result="semantic_skipped"} 1' in raw.decode()
    time.sleep(0.5)  # the late embedding ends after its request: nothing leaks at exit
    s.stop()


def test_responses_paraphrase_is_a_semantic_hit():
    m = Mock()
    s = Sluice(cfg(m))
    u = s.url + "/v1/responses"
    st, h, first, _ = post_json(u, {"model": "gpt-4o-mini", "input": Q, "store": False})
    assert st == 200 and h["x-sluice-cache"] == "miss", (st, first)
    st, h, again, _ = post_json(u, {"model": "gpt-4o-mini", "input": PARA, "store": False})
    assert st == 200 and h["x-sluice-cache"] == "semantic" and again == first, (h, again)
    st, h, _, _ = post_json(u, {"model": "gpt-4o-mini", "input": "What is not the capital of France?",
                                "store": False})
    assert st == 200 and h["x-sluice-cache"] == "miss", h
    s.stop()


def test_messages_paraphrase_is_a_semantic_hit_and_dashboard_counts_it():
    m = Mock()
    s = Sluice(cfg(m))
    u = s.url + "/v1/messages"
    msg = lambda text: {"model": "gpt-4o-mini", "max_tokens": 50, "system": "be brief",
                        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    st, h, first, _ = post_json(u, msg(Q))
    assert st == 200 and h["x-sluice-cache"] == "miss" and first["type"] == "message", (st, first)
    st, h, again, _ = post_json(u, msg(PARA))
    assert st == 200 and h["x-sluice-cache"] == "semantic" and again == first, (h, again)
    assert float(h["x-sluice-similarity"]) >= 0.95, h
    st, h, ev, raw = stream(u, dict(msg("What is France's capital?"), stream=True))
    assert st == 200 and h["x-sluice-cache"] == "semantic" and b"event: message_stop" in raw, raw[:300]
    assert answers(m) == 1
    log = [l for l in s.wait_log(6) if l["path"] == "/v1/messages"]
    assert [l["cache"] for l in log] == ["miss", "semantic", "semantic"], log
    assert log[1]["served_from"] == log[0]["request_id"] and log[1]["similarity"] >= 0.95, log[1]
    saved = sum(l["saved_usd"] for l in log)  # the hits' savings minus the embeddings' cost
    totals = json.loads(request("GET", s.url + "/stats")[2])["totals"]
    assert totals["semantic_hits"] == 2, totals
    assert abs(totals["semantic_saved_usd"] - (log[1]["saved_usd"] + log[2]["saved_usd"])) < 1e-9, totals
    assert abs(totals["saved_usd"] - saved) < 1e-9, (totals, saved)
    ui = request("GET", s.url + "/ui")[2].decode()
    assert "s.totals.semantic_hits" in ui and "s.totals.semantic_saved_usd" in ui
    s.stop()
