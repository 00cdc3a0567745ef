"""Issue 17 (holes), items 2, 6, 7, 11, 12: metric labels a client cannot mint,
passwords never shown, the admin key, what SIGHUP applies, provider answers
that echo credentials."""
import json, os, re, shutil, signal, socket, subprocess, time
from harness import (SLUICE_BIN, Mock, Redis, Sluice, base_config, chat, post_json, request,
                     stream, yaml_dump)

KEYS = [{"key": "sk-team-a", "tenant": "team-a"}]


def promtool_ok(body):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing (third_party/packages.txt installs prometheus)"
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[:2000]


def keepalive_gets(port, paths):
    """GETs over one kept-alive connection, pipelined in batches; returns the statuses."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    statuses, buf = [], b""
    for i in range(0, len(paths), 100):
        batch = paths[i:i + 100]
        s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode() for p in batch))
        want = len(statuses) + len(batch)
        while len(statuses) < want:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                got = s.recv(65536)
                assert got, "connection closed after %d answers" % len(statuses)
                buf += got
                continue
            n = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            if len(rest) < n:
                got = s.recv(65536)
                assert got
                buf += got
                continue
            statuses.append(int(head.split(b" ")[1]))
            buf = rest[n:]
    s.close()
    return statuses


def test_metrics_bounded_under_unique_paths_and_models():
    m = Mock()
    c = base_config(m, keys=KEYS)
    c["providers"] = [{"name": "narrow", "kind": "openai", "base_url": m.url + "/v1",
                       "api_key": "sk-upstream-secret", "models": ["gpt-4o-mini"]},
                      {"name": "wide", "kind": "openai", "base_url": m.url + "/v1",
                       "api_key": "sk-upstream-secret", "models": ["served-*"]}]
    s = Sluice(c)
    auth = {"Authorization": "Bearer sk-team-a"}
    u = s.url + "/v1/chat/completions"
    assert post_json(u, chat("real"), auth)[0] == 200
    statuses = keepalive_gets(s.port, ["/probe-%d-%s" % (i, "x" * 20) for i in range(10000)])
    assert statuses == [404] * 10000
    for i in range(20):  # no provider serves these: 404, folded into "other"
        assert post_json(u, chat("x", model="nobody-%d" % i), auth)[0] == 404
    for i in range(300):  # a provider serves any of these: at most 256 names are remembered
        assert post_json(u, chat("y", model="served-%d" % i), auth)[0] == 200
    t0 = time.time()
    st, h, body = request("GET", s.url + "/metrics")
    took = time.time() - t0
    text = body.decode()
    assert st == 200 and took < 2, took
    assert len(body) < 2 << 20, len(body)
    assert "/probe-" not in text and 'route="unmatched"' in text
    assert "nobody-" not in text and 'model="other"' in text
    models = set(re.findall(r'model="(served-\d+)"', text))
    assert 0 < len(models) <= 256, len(models)
    assert re.search(r'sluice_requests_total\{route="/v1/chat/completions",status="200",'
                     r'tenant="team-a",model="gpt-4o-mini"', text), text[:3000]
    promtool_ok(body)
    s.stop()


def test_metrics_render_failure_is_a_clean_500():
    m = Mock()
    s = Sluice(base_config(m, server={"max_response_bytes": 2048}))
    post_json(s.url + "/v1/chat/completions", chat("fill"))
    st, h, body = request("GET", s.url + "/metrics")
    assert st == 500, (st, body[:200])
    j = json.loads(body)
    assert j["error"]["code"] == "metrics_unavailable" and j["error"]["type"] == "api_error"
    s.stop()


# ---- item 6: passwords are never shown --------------------------------------

def test_passwords_redacted_in_banner_health_stats_and_logs():
    redis_pw, url_pw = "redis-pass-4711", "url-pass-0815"
    r = Redis(extra=["--requirepass", redis_pw])
    m = Mock()
    c = base_config(m, redis={"url": "redis://:%s@127.0.0.1:%d/0" % (redis_pw, r.port)})
    host = m.url[len("http://"):]
    c["providers"] = [{"name": "dead", "kind": "openai", "base_url": "http://eve:%s@127.0.0.1:1/v1" % url_pw,
                       "api_key": "sk-upstream-secret", "models": ["dead-*"]},
                      {"name": "userinfo", "kind": "openai", "base_url": "http://bob:%s@%s/v1" % (url_pw, host),
                       "api_key": "sk-upstream-secret", "models": ["*"]}]
    c["retries"] = {"max": 0, "base_ms": 1}
    s = Sluice(c)
    time.sleep(0.3)
    post_json(s.url + "/v1/chat/completions", chat("hi"))
    st, _, j, err_body = post_json(s.url + "/v1/chat/completions", chat("hi", model="dead-1"))
    assert st == 502, st
    _, _, health = request("GET", s.url + "/health")
    _, _, stats = request("GET", s.url + "/stats")
    hj = json.loads(health)
    assert hj["redis"]["state"] == "up", hj["redis"]  # the password itself still works
    shown = {p["name"]: p["base_url"] for p in hj["providers"]}
    assert shown["userinfo"] == "http://bob:***@%s/v1" % host, shown
    s.stop()
    everything = [s.stderr(), health.decode(), stats.decode(), err_body.decode(),
                  open(s.access_path).read()]
    for text in everything:
        assert redis_pw not in text and url_pw not in text, text[:3000]
    assert "redis://:***@127.0.0.1" in s.stderr() and "bob:***@" in s.stderr(), s.stderr()


# ---- item 7: the admin key ----------------------------------------------------

def check_config(text, start=False):
    d = os.path.join("/tmp", "sluice-admin-%d" % os.getpid())
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "sluice.yaml")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([SLUICE_BIN, "-t", "-c", path], capture_output=True, text=True, timeout=30)
    run = subprocess.run([SLUICE_BIN, "-c", path], capture_output=True, text=True, timeout=30) if start else None
    return path, r, run


def test_empty_or_short_admin_key_refused_at_config_check():
    keys = "keys:\n  - { key: sk-team-a, tenant: team-a }\n"
    path, r, run = check_config(keys + "admin:\n  key: \"\"\n", start=True)
    assert r.returncode == 1 and (path + ":4: admin.key: empty") in r.stderr, r.stderr
    assert run.returncode == 1 and "admin.key" in run.stderr  # it does not start either
    os.environ["SL_TEST_UNSET_ADMIN"] = ""
    del os.environ["SL_TEST_UNSET_ADMIN"]
    path, r, _ = check_config(keys + "admin:\n  key: ${SL_TEST_UNSET_ADMIN:-}\n")
    assert r.returncode == 1 and "admin.key: empty" in r.stderr, r.stderr
    path, r, _ = check_config(keys + "admin:\n  key: short\n")
    assert r.returncode == 1 and (path + ":4: admin.key: too short") in r.stderr, r.stderr
    path, r, _ = check_config(keys + "admin:\n  key: sk-admin-long-enough\n")
    assert r.returncode == 0, r.stderr


def test_empty_credentials_get_401_on_admin_routes():
    m = Mock()
    s = Sluice(base_config(m, keys=KEYS, admin={"key": "sk-admin-0123"}))
    for h in ({"x-api-key": ""}, {"Authorization": "Bearer "}, {"Authorization": "Bearer sk-admin-012"},
              {"x-api-key": "sk-admin-01234"}):
        st, _, body = request("GET", s.url + "/stats", headers=h)
        assert st == 401 and json.loads(body)["error"]["code"] == "invalid_admin_key", (h, st, body)
        assert request("GET", s.url + "/sla/dashboard", headers=h)[0] == 401, h
    assert request("GET", s.url + "/stats", headers={"x-api-key": "sk-admin-0123"})[0] == 200
    assert request("GET", s.url + "/sla/dashboard", headers={"x-api-key": "sk-admin-0123"})[0] == 200
    assert request("GET", s.url + "/sla/dashboard", headers={"x-api-key": "sk-team-a"})[0] == 200
    assert request("GET", s.url + "/stats", headers={"x-api-key": "sk-team-a"})[0] == 401
    s.stop()
    # an admin key guards /stats even without client keys (it used to stay open)
    s = Sluice(base_config(m, admin={"key": "sk-admin-0123"}))
    assert request("GET", s.url + "/stats", headers={"x-api-key": ""})[0] == 401
    assert request("GET", s.url + "/stats", headers={"x-api-key": "sk-admin-0123"})[0] == 200
    assert request("GET", s.url + "/sla/dashboard")[0] == 200  # services stay open without keys
    s.stop()


# ---- item 11: what SIGHUP applies ---------------------------------------------

def reload(s, config, wait_for="reloaded"):
    before = s.stderr().count(wait_for)
    s.write_config(config)
    s.signal(signal.SIGHUP)
    end = time.time() + 5
    while time.time() < end and s.stderr().count(wait_for) == before:
        time.sleep(0.02)
    assert s.stderr().count(wait_for) > before, s.stderr()[-2000:]


def test_reload_moves_the_access_log():
    m = Mock()
    c = base_config(m)
    s = Sluice(c)
    post_json(s.url + "/v1/chat/completions", chat("before"))
    assert len(s.wait_log(1)) == 1
    moved = os.path.join(s.dir, "moved.log")
    c2 = dict(c, listen="127.0.0.1:%d" % s.port, log={"access": moved})
    reload(s, c2)
    post_json(s.url + "/v1/chat/completions", chat("after"))
    time.sleep(0.3)
    old = s.access_log()
    new = [json.loads(l) for l in open(moved) if l.strip()]
    assert len(old) == 1 and len(new) == 1 and new[0]["path"] == "/v1/chat/completions", (old, new)
    s.stop()


def test_reload_applies_max_inflight():
    import threading
    m = Mock()
    m.config(delay_ms=600)
    c = base_config(m, server={"max_inflight": 1}, retries={"max": 0, "base_ms": 1})
    s = Sluice(c)

    def burst(n):
        out = []
        ts = [threading.Thread(target=lambda i=i: out.append(post_json(s.url + "/v1/chat/completions",
                                                                         chat("b%d" % i))[0])) for i in range(n)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        return sorted(out)

    assert burst(3) == [200, 503, 503]
    reload(s, dict(c, listen="127.0.0.1:%d" % s.port, log={"access": s.access_path},
                   server={"max_inflight": 8}))
    assert burst(3) == [200, 200, 200]
    s.stop()


def test_reload_drops_the_series_of_removed_keys_and_models():
    """Gauges the configuration names (budgets, providers per model) follow a
    reload: a key or model it removed is no longer exported."""
    m = Mock()
    prov = lambda models: [{"name": "mock", "kind": "openai", "base_url": m.url + "/v1",
                            "api_key": "sk-upstream-secret", "models": models}]
    keys = [{"key": "sk-stay-0001", "tenant": "stays", "budget_usd": 5},
            {"key": "sk-gone-0001", "tenant": "goes", "budget_usd": 7}]
    c = base_config(m, keys=keys, providers=prov(["gpt-4o-mini", "gpt-old"]))
    s = Sluice(c)

    def series():
        body = request("GET", s.url + "/metrics")[2].decode()
        return [l for l in body.splitlines() if l.startswith(("sluice_budget_usd{", "sluice_model_providers{"))]

    before = series()
    assert any('tenant="goes"' in l for l in before) and any('model="gpt-old"' in l for l in before), before
    reload(s, dict(c, listen="127.0.0.1:%d" % s.port, log={"access": s.access_path},
                   keys=keys[:1], providers=prov(["gpt-4o-mini"])))
    after = series()
    assert not any('tenant="goes"' in l or 'model="gpt-old"' in l for l in after), after
    assert any('tenant="stays"' in l for l in after) and any('model="gpt-4o-mini"' in l for l in after), after
    s.stop()


def test_reload_shrinks_l1_and_reports_restart_keys():
    m = Mock()
    c = base_config(m, cache={"enabled": True, "l1_max_bytes": "1MiB"})
    s = Sluice(c)
    for i in range(40):
        post_json(s.url + "/v1/chat/completions", chat("fill %d %s" % (i, "z" * 200)))
    cache = json.loads(request("GET", s.url + "/health")[2])["cache"]
    assert cache["entries"] == 40 and cache["bytes"] > 8192, cache
    base = dict(c, listen="127.0.0.1:%d" % s.port, log={"access": s.access_path})
    reload(s, dict(base, cache={"enabled": True, "l1_max_bytes": "8KiB"}, redis={"timeout_ms": 75}))
    h = json.loads(request("GET", s.url + "/health")[2])
    assert h["cache"]["bytes"] <= 8192 and h["cache"]["max_bytes"] == 8192, h["cache"]
    assert h["cache"]["entries"] < 40 and h["cache"]["evictions"] == 40 - h["cache"]["entries"], h["cache"]
    assert h["restart_pending"] == ["redis.timeout_ms"], h["restart_pending"]
    assert "redis.timeout_ms changed: takes effect on restart" in s.stderr()
    reload(s, dict(base, cache={"enabled": True, "l1_max_bytes": "8KiB"}))  # back as at start
    assert json.loads(request("GET", s.url + "/health")[2])["restart_pending"] == []
    s.stop()


# ---- item 12: provider answers that echo credentials ---------------------------

SECRET = "sk-upstream-secret"


def test_provider_echoing_the_key_is_scrubbed_plain_and_stream():
    m = Mock()
    s = Sluice(base_config(m, retries={"max": 0, "base_ms": 1}))
    u = s.url + "/v1/chat/completions"
    m.config(echo_key=True)
    st, _, j, raw = post_json(u, chat("plain"))
    assert st == 401 and SECRET not in raw.decode() and "Bearer ***" in j["error"]["message"], raw
    st, _, ev, raw = stream(u, chat("stream", stream=True))
    assert st == 401 and SECRET not in raw.decode() and b"***" in raw, raw
    m.config(echo_key="stream")
    st, _, ev, raw = stream(u, chat("mid-stream", stream=True))
    assert st == 200 and SECRET not in raw.decode() and "Bearer ***" in raw.decode(), raw
    assert ev and "error" in json.loads(ev[0]), ev
    assert SECRET in json.dumps(m.last())  # the provider did get the key
    s.stop()
    assert SECRET not in open(s.access_path).read() + s.stderr()


def test_provider_echo_scrubbed_through_translation():
    m = Mock()
    c = base_config(m, retries={"max": 0, "base_ms": 1})
    c["providers"] = [{"name": "claude", "kind": "anthropic", "base_url": m.url,
                       "api_key": SECRET, "models": ["*"]}]
    s = Sluice(c)
    m.config(echo_key=True)
    st, _, j, raw = post_json(s.url + "/v1/chat/completions", chat("translated"))
    assert st == 401 and SECRET not in raw.decode() and "***" in raw.decode(), raw
    st, _, j, raw = post_json(s.url + "/v1/messages", {"model": "claude-x", "max_tokens": 10,
                                                        "messages": [{"role": "user", "content": "hi"}]})
    assert st == 401 and SECRET not in raw.decode(), raw
    s.stop()
