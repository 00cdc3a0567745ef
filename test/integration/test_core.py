"""Issue 2: the gateway core, seen from a client."""
import json, os, signal, subprocess, threading, time
from harness import (Mock, Sluice, SLUICE_BIN, base_config, chat, post_json, post_status_or_closed,
                     free_port, request, send_raw, sse_events, stream, wait_for, yaml_dump)

ERROR_KEYS = {"message", "type", "param", "code"}


def setup(**over):
    m = Mock()
    s = Sluice(base_config(m, **over))
    return m, s


def assert_error(status, j, want_status, param=None, code=None):
    assert status == want_status, "status %s, want %s: %s" % (status, want_status, j)
    assert j and set(j["error"].keys()) >= ERROR_KEYS, j
    if param is not None:
        assert j["error"]["param"] == param, j
    if code is not None:
        assert j["error"]["code"] == code, j


def test_plain_chat():
    m, s = setup()
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat("hi there"))
    assert st == 200, (st, j)
    assert j["object"] == "chat.completion"
    assert "hi there" in j["choices"][0]["message"]["content"]
    assert j["usage"]["prompt_tokens"] > 0 and j["usage"]["completion_tokens"] > 0
    assert h["x-sluice-provider"] == "mock"
    assert h["content-type"].startswith("application/json")
    assert len(h["x-request-id"]) >= 16
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat(), {"x-request-id": "my-req-42"})
    assert h["x-request-id"] == "my-req-42"
    s.stop()


def test_streaming_chat_matches_plain():
    m, s = setup()
    _, _, plain, _ = post_json(s.url + "/v1/chat/completions", chat("stream me"))
    st, h, events, _ = stream(s.url + "/v1/chat/completions", chat("stream me", stream=True))
    assert st == 200 and h["content-type"].startswith("text/event-stream"), h
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"], (text, plain)
    assert not any("usage" in c and c["usage"] for c in chunks)
    st, h, events, _ = stream(s.url + "/v1/chat/completions",
                              chat("stream me", stream=True, stream_options={"include_usage": True}))
    last = json.loads(events[-2])
    assert last["usage"]["completion_tokens"] > 0, last
    s.stop()


def test_completions_embeddings_models():
    m, s = setup()
    st, _, j, _ = post_json(s.url + "/v1/completions", {"model": "gpt-4o-mini", "prompt": "Say"})
    assert st == 200 and j["object"] == "text_completion" and j["choices"][0]["text"], j
    st, _, ev, _ = stream(s.url + "/v1/completions", {"model": "gpt-4o-mini", "prompt": "Say", "stream": True})
    assert st == 200 and ev[-1] == "[DONE]"
    st, _, j, _ = post_json(s.url + "/v1/embeddings", {"model": "text-embedding-3-small", "input": ["a", "b"]})
    assert st == 200 and len(j["data"]) == 2 and len(j["data"][0]["embedding"]) == 256, j
    st, _, body = request("GET", s.url + "/v1/models")
    ids = [x["id"] for x in json.loads(body)["data"]]
    assert st == 200 and "mock-gpt" in ids, ids
    s.stop()


def test_validation_errors():
    m, s = setup(server={"max_body_bytes": "64KiB"})
    u = s.url + "/v1/chat/completions"
    st, _, j, _ = post_json(u, "{not json")
    assert_error(st, j, 400, code="invalid_json")
    st, _, j, _ = post_json(u, {"messages": [{"role": "user", "content": "x"}]})
    assert_error(st, j, 400, param="model")
    st, _, j, _ = post_json(u, {"model": "m", "messages": {}})
    assert_error(st, j, 400, param="messages")
    st, _, j, _ = post_json(u, chat(stream="yes"))
    assert_error(st, j, 400, param="stream")
    st, _, j, _ = post_json(u, chat(max_tokens="10"))
    assert_error(st, j, 400, param="max_tokens")
    st, _, j, _ = post_json(u, json.dumps(chat()) + " garbage")
    assert_error(st, j, 400)
    st, _, j, _ = post_json(u, '{"model":"a","model":"b","messages":[{"role":"user","content":"x"}]}')
    assert_error(st, j, 400)
    assert post_status_or_closed(u, chat("x" * 70000)) in (413, "closed")
    st, _, j, _ = post_json(s.url + "/v1/nope", chat())
    assert_error(st, j, 404)
    st, _, body = request("GET", u)
    assert_error(st, json.loads(body), 405)
    assert m.stats()["requests"] == 0, "bad input must never reach the provider"
    s.stop()


def test_model_not_found():
    m = Mock()
    cfg = base_config(m)
    cfg["providers"][0]["models"] = ["gpt-*"]
    s = Sluice(cfg)
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat(model="llama"))
    assert_error(st, j, 404, code="model_not_found")
    s.stop()


def test_upstream_errors_pass_through():
    m, s = setup(retries={"max": 0, "base_ms": 1})
    u = s.url + "/v1/chat/completions"
    for status in (500, 429, 400):
        m.config(status=status)
        st, _, j, _ = post_json(u, chat("e%d" % status))
        assert_error(st, j, status)
    m.config(status=200, body="<html>oops</html>")
    st, _, j, _ = post_json(u, chat("html"))
    assert_error(st, j, 502)
    s.stop()


def test_connection_refused_502_and_timeout_504():
    m = Mock()
    cfg = base_config(m, retries={"max": 0, "base_ms": 1})
    cfg["providers"][0]["base_url"] = "http://127.0.0.1:1/v1"
    s = Sluice(cfg)
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat())
    assert_error(st, j, 502)
    s.stop()
    m, s = setup(retries={"max": 0, "base_ms": 1},
                 timeouts={"connect_ms": 500, "first_byte_ms": 300, "total_ms": 5000, "idle_ms": 1000})
    m.config(delay_ms=2000)
    t0 = time.time()
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat())
    assert_error(st, j, 504)
    assert time.time() - t0 < 1.5
    s.stop()


def test_stream_dropped_midway_ends_with_error_event():
    m, s = setup(retries={"max": 0, "base_ms": 1})
    m.config(stream_chunks=6, drop_after_chunks=2)
    st, _, events, _ = stream(s.url + "/v1/chat/completions", chat("drop", stream=True))
    assert st == 200
    assert "[DONE]" not in events, events
    assert "error" in json.loads(events[-1]), events[-1]
    s.stop()


def test_upstream_gets_provider_key_and_original_bytes():
    m, s = setup()
    body = '{"messages":[{"role":"user","content":"exact bytes"}],   "model":"gpt-4o-mini"}'
    st, _, _, _ = post_json(s.url + "/v1/chat/completions", body, {"Authorization": "Bearer sk-client-secret"})
    assert st == 200
    last = m.last()
    assert last["headers"]["authorization"] == "Bearer sk-upstream-secret", last["headers"]
    assert last["body"] == body
    s.stop()


def test_access_log_fields_and_no_secrets():
    m, s = setup()
    post_json(s.url + "/v1/chat/completions", chat(), {"Authorization": "Bearer sk-client-secret", "x-request-id": "abc-1"})
    stream(s.url + "/v1/chat/completions", chat(stream=True))
    request("GET", s.url + "/health")
    lines = s.wait_log(3)
    assert len(lines) == 3, lines
    fields = ["ts", "request_id", "method", "path", "status", "tenant", "model", "provider", "cache",
              "stream", "latency_ms", "upstream_ms", "ttfb_ms", "prompt_tokens", "completion_tokens",
              "cost_usd", "retries", "bytes_out", "error"]
    for l in lines:
        for f in fields:
            assert f in l, (f, l)
    assert lines[0]["request_id"] == "abc-1" and lines[0]["status"] == 200
    assert lines[0]["cost_usd"] > 0 and lines[0]["prompt_tokens"] > 0
    assert lines[1]["stream"] is True
    s.stop()
    raw = open(s.access_path).read() + s.stderr()
    assert "sk-client-secret" not in raw and "sk-upstream-secret" not in raw


def test_health_routes():
    m, s = setup()
    assert request("GET", s.url + "/health/live")[0] == 200
    assert request("GET", s.url + "/health/ready")[0] == 200
    st, _, body = request("GET", s.url + "/health")
    j = json.loads(body)
    for k in ("version", "uptime_s", "providers", "inflight", "state_store"):
        assert k in j, j
    assert j["state_store"] == "embedded"
    s.stop()


def test_sigterm_drains_stream():
    m, s = setup()
    m.config(stream_chunks=5, chunk_delay_ms=200)
    result = {}

    def client():
        try:
            result["r"] = stream(s.url + "/v1/chat/completions", chat("long", stream=True))
        except Exception as e:  # reported below with the assertion
            result["r"] = (None, None, [repr(e)], None)

    t = threading.Thread(target=client)
    t.start()
    deadline = time.time() + 5
    while m.stats()["inflight"] == 0 and time.time() < deadline:
        time.sleep(0.02)
    s.signal(signal.SIGTERM)
    time.sleep(0.1)
    try:
        st, _, _ = request("GET", s.url + "/health/ready", timeout=1)
        assert st == 503
    except OSError:
        pass  # not accepting any more: also right
    t.join(10)
    st, _, events, _ = result["r"]
    assert st == 200 and events[-1] == "[DONE]", events
    assert s.proc.wait(10) == 0
    s.stop()



def test_drain_deadline_ends_every_stream_with_shutting_down():
    """Issue 17 item 8: streams still open at shutdown.drain_s each get an SSE
    error event (code shutting_down), an access-log line and metering, and
    sluice exits 0."""
    import socket
    n = 100
    m = Mock()
    s = Sluice(base_config(m, shutdown={"drain_s": 1}, keys=[{"key": "sk-d", "tenant": "d", "budget_usd": 100}]))
    m.config(stream_chunks=40, chunk_delay_ms=100)  # 4 s streams
    body = json.dumps(chat("drain me", stream=True)).encode()
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-d\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    socks = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=15)
        c.sendall(req)
        socks.append(c)
    got = [b""] * n
    for i, c in enumerate(socks):  # every stream is open: its head and first chunk came
        while b"data:" not in got[i]:
            chunk = c.recv(65536)
            assert chunk, "stream %d closed early: %r" % (i, got[i])
            got[i] += chunk
    t0 = time.time()
    s.signal(signal.SIGTERM)

    def read_rest(i):
        c = socks[i]
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                got[i] += chunk
        except OSError:
            pass
        c.close()
    ts = [threading.Thread(target=read_rest, args=(i,)) for i in range(n)]
    [t.start() for t in ts]
    [t.join(15) for t in ts]
    rc = s.proc.wait(15)
    assert time.time() - t0 < 4, "the drain took %.1f s" % (time.time() - t0)
    for i in range(n):
        errs = []
        for line in got[i].split(b"\n"):
            if line.startswith(b"data: {") and b'"error"' in line:
                errs.append(json.loads(line[6:]))
        assert len(errs) == 1, "stream %d: %r" % (i, got[i][-600:])
        e = errs[0]["error"]
        assert e["code"] == "shutting_down" and set(e) == ERROR_KEYS, e
        assert got[i].rstrip().endswith(b"0"), "stream %d did not end its chunked body" % i
    assert rc == 0, s.stderr()[-2000:]
    log = [l for l in s.access_log() if l["path"] == "/v1/chat/completions"]
    assert len(log) == n, len(log)
    assert all(l["stream"] and l["error"] and "shutting down" in l["error"] for l in log), log[0]
    assert all(l["completion_tokens"] > 0 and l["cost_usd"] > 0 for l in log), log[0]
    assert "LLM requests cut" in s.stderr()
    s.stop()

def test_sighup_reload():
    m = Mock()
    cfg = base_config(m)
    cfg["providers"][0]["models"] = ["gpt-*"]
    s = Sluice(cfg)
    assert post_json(s.url + "/v1/chat/completions", chat(model="llama"))[0] == 404
    cfg["providers"][0]["models"] = ["*"]
    s.write_config(dict(cfg, listen="127.0.0.1:%d" % s.port, log={"access": s.access_path}))
    s.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert post_json(s.url + "/v1/chat/completions", chat(model="llama"))[0] == 200
    s.write_config("providers: [ this is : broken")
    s.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert post_json(s.url + "/v1/chat/completions", chat(model="llama"))[0] == 200
    assert "reload refused" in s.stderr()
    s.stop()


def test_config_check_flag(tmp=None):
    m = Mock()
    s = Sluice(base_config(m))
    r = subprocess.run([SLUICE_BIN, "-t", "-c", s.conf_path], capture_output=True)
    assert r.returncode == 0, r.stderr
    bad = s.conf_path + ".bad"
    with open(bad, "w") as f:
        f.write("listen: 127.0.0.1:1\ntimeouts:\n  connect_ms: -5\n")
    r = subprocess.run([SLUICE_BIN, "-t", "-c", bad], capture_output=True)
    assert r.returncode == 1 and (bad + ":3:").encode() in r.stderr, r.stderr
    with open(bad, "w") as f:
        f.write("listen: 127.0.0.1:1\nbogus_key: 1\n")
    r = subprocess.run([SLUICE_BIN, "-t", "-c", bad], capture_output=True)
    assert r.returncode == 1 and b"bogus_key" in r.stderr and b"unknown key" in r.stderr, r.stderr
    s.stop()


def _strip_volatile(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith((b"date:", b"x-request-id:"))]
    return b"\r\n".join(lines), body


def test_split_invariance():
    m, s = setup()
    body = json.dumps(chat("split")).encode()
    reqs = [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{not json",
        b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for raw in reqs:
        whole = _strip_volatile(send_raw(s.port, raw))
        assert whole[0].startswith(b"HTTP/1.1 "), whole
        step = max(1, len(raw) // 40)
        for cut in range(1, len(raw), step):
            got = _strip_volatile(send_raw(s.port, raw, chunks=[raw[:cut], raw[cut:]]))
            assert got == whole, (cut, got, whole)
        got = _strip_volatile(send_raw(s.port, raw, chunks=[raw[i:i + 1] for i in range(len(raw))]))
        assert got == whole, ("bytewise", got, whole)
    s.stop()


def test_duplicate_content_length_refused():
    m, s = setup()
    body = json.dumps(chat()).encode()
    raw = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), len(body) + 1, body)
    got = send_raw(s.port, raw, timeout=2)
    assert got.startswith(b"HTTP/1.1 400"), got[:100]
    assert m.stats()["requests"] == 0
    s.stop()


def test_two_workers_share_the_port_and_redis_limits():
    from harness import Redis
    m, r = Mock(), Redis()
    s = Sluice(base_config(m, workers=2, redis={"url": r.url}, keys=[{"key": "sk-w", "tenant": "w", "rpm": 6}]))
    time.sleep(0.5)
    seen, codes = set(), []
    for i in range(12):
        st, _, body = request("GET", s.url + "/health")
        seen.add(json.loads(body)["worker"])
        codes.append(post_json(s.url + "/v1/chat/completions", chat("w%d" % i), {"Authorization": "Bearer sk-w"})[0])
    assert codes.count(200) == 6 and codes.count(429) == 6, codes  # the limit holds across workers
    assert seen <= {0, 1}
    s.stop()


def test_two_workers_metrics_report_the_group():
    import re
    m = Mock()
    s = Sluice(base_config(m, workers=2))
    time.sleep(0.5)
    for i in range(40):  # new connections: the kernel spreads them over both workers
        assert post_json(s.url + "/v1/chat/completions", chat("g%d" % i))[0] == 200
    time.sleep(1.3)  # each worker publishes its snapshot once a second
    pat = re.compile(r'^sluice_requests_total\{route="/v1/chat/completions",status="200"[^}]*\} (\S+)$', re.M)
    per_worker = {}
    for i in range(16):
        st, _, body = request("GET", s.url + "/metrics")
        text = body.decode()
        total = sum(float(v) for v in pat.findall(text))
        assert total == 40, (total, text[:2000])
        hist = re.search(r'^sluice_request_duration_seconds_count\{route="/v1/chat/completions"\} (\S+)$', text, re.M)
        assert hist and float(hist.group(1)) == 40
        per_worker[json.loads(request("GET", s.url + "/health")[2])["worker"]] = True
    assert len(per_worker) == 2  # both workers answered (odds of not: 2^-15)
    import shutil
    r = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0, r.stdout + r.stderr  # the merged exposition is valid too
    s.stop()


def test_pooled_upstream_handles_carry_nothing_over():
    """Issue 18: easy handles are reused without curl_easy_reset, URLs and the
    fixed header lines are interned: each call still sends exactly its own
    method, path, body, request id and the provider's key."""
    m = Mock()
    m2 = Mock()
    c = base_config(m)
    c["providers"] = [
        {"name": "one", "kind": "openai", "base_url": m.url + "/v1", "api_key": "sk-one", "models": ["gpt-*"]},
        {"name": "two", "kind": "openai", "base_url": m2.url + "/v1", "api_key": "sk-two", "models": ["text-*"]}]
    s = Sluice(c)
    for i in range(3):
        st, h, _, _ = post_json(s.url + "/v1/chat/completions", chat("pool %d" % i),
                                {"x-request-id": "req-pool-%d" % i})
        assert st == 200, h
        last = m.last()
        assert last["path"] == "/v1/chat/completions" and json.loads(last["body"])["messages"][0]["content"] == "pool %d" % i
        assert last["headers"]["authorization"] == "Bearer sk-one" and last["headers"]["x-request-id"] == "req-pool-%d" % i
        assert last["headers"]["content-type"] == "application/json"
        st, _, body = request("GET", s.url + "/v1/models")  # a GET on a handle a POST used
        assert st == 200 and json.loads(body)["data"], body
        st, _, j, _ = post_json(s.url + "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"})
        assert st == 200 and m2.last()["headers"]["authorization"] == "Bearer sk-two"
        assert m2.last()["path"] == "/v1/embeddings"
    s.stop()
    # a proxy in the environment is still honoured (here: one that refuses)
    s = Sluice(base_config(m), env={"http_proxy": "http://127.0.0.1:%d" % free_port()})
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat("via proxy"))
    assert st == 502, (st, j)
    s.stop()
    m2.stop()


def _libcrypto_rss_kib(pid):
    kib, cur = 0, False
    for line in open("/proc/%d/smaps" % pid):
        parts = line.split()
        if len(parts) >= 5 and "-" in parts[0] and not parts[0].endswith(":"):
            cur = len(parts) > 5 and "libcrypto" in parts[5]
        elif cur and parts[0] == "Rss:":
            kib += int(parts[1])
    return kib


def test_curl_made_ready_by_the_first_call():
    """Issue 18 (PSS idle): libcurl's global init (which initialises OpenSSL
    whatever its flags) runs on the first upstream call, not at start: an idle
    instance says upstream_ready false in /health, and true once it called."""
    m = Mock()
    # a host name: curl's (the native client takes IP literals only)
    s = Sluice(base_config(m, providers=[{"name": "mock", "kind": "openai",
                                          "base_url": m.url.replace("127.0.0.1", "localhost") + "/v1",
                                          "api_key": "sk-upstream-secret", "models": ["*"]}]))
    h = json.loads(request("GET", s.url + "/health")[2])
    assert h["upstream_ready"] is False, h
    before = _libcrypto_rss_kib(s.proc.pid)
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat("first call"))
    assert st == 200, j
    h = json.loads(request("GET", s.url + "/health")[2])
    assert h["upstream_ready"] is True and h["upstream_inflight"] == 0, h
    print("NOTE libcrypto RSS idle %d KiB, after the first call %d KiB" % (before, _libcrypto_rss_kib(s.proc.pid)))
    s.stop()


def _mapped(pid):
    with open("/proc/%d/maps" % pid) as f:
        return f.read()


def _hostname_provider(m):
    return [{"name": "mock", "kind": "openai", "base_url": m.url.replace("127.0.0.1", "localhost") + "/v1",
             "api_key": "sk-upstream-secret", "models": ["*"]}]


def test_an_http_only_instance_never_maps_libcurl():
    """Issue 18 (PSS idle): sluice does not link libcurl. An instance whose
    upstreams the native client serves never maps it, nor OpenSSL or GnuTLS
    under it; one whose configuration names a host name loads it at start,
    before its first call (so that call does not wait for the load)."""
    m = Mock()
    s = Sluice(base_config(m))
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat("native only"))
    assert st == 200, j
    st, _, events, _ = stream(s.url + "/v1/chat/completions", chat("native stream", stream=True))
    assert st == 200 and events[-1] == "[DONE]", events
    maps = _mapped(s.proc.pid)
    for lib in ("libcurl", "libssl", "libcrypto", "libgnutls"):
        assert lib not in maps, "%s mapped by an http-only instance" % lib
    s.stop()
    s = Sluice(base_config(m, providers=_hostname_provider(m)))
    assert "libcurl" in _mapped(s.proc.pid)  # at start, no call yet
    assert json.loads(request("GET", s.url + "/health")[2])["upstream_ready"] is False
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat("through curl"))
    assert st == 200 and "through curl" in j["choices"][0]["message"]["content"], j
    s.stop()


def test_without_libcurl_only_what_needs_it_is_refused():
    """libcurl missing (SLUICE_LIBCURL names a file that is not there): an
    http-only configuration checks, starts and serves; one that names a host
    name fails `sluice -t` and start with the URL and why, and a reload to
    it is refused while the running configuration keeps serving."""
    m = Mock()
    env = {"SLUICE_LIBCURL": "/nonexistent/libcurl.so.4"}
    s = Sluice(base_config(m), env=env)
    r = subprocess.run([SLUICE_BIN, "-t", "-c", s.conf_path], capture_output=True, env=dict(os.environ, **env))
    assert r.returncode == 0, r.stderr
    assert post_json(s.url + "/v1/chat/completions", chat("still native"))[0] == 200
    bad = s.conf_path + ".curl"
    cfg = base_config(m, providers=_hostname_provider(m))
    cfg.update(listen="127.0.0.1:%d" % s.port, log={"access": s.access_path})
    with open(bad, "w") as f:
        f.write(yaml_dump(cfg) + "\n")
    r = subprocess.run([SLUICE_BIN, "-t", "-c", bad], capture_output=True, env=dict(os.environ, **env))
    err = r.stderr.decode()
    assert r.returncode == 1 and "localhost" in err and "needs libcurl" in err, err
    os.replace(bad, s.conf_path)  # reload to it: refused
    s.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in s.stderr(), 5, "the reload refused")
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat("old config"))
    assert st == 200 and h["x-sluice-provider"] == "mock", j
    s.stop()
    r = subprocess.run([SLUICE_BIN, "-c", s.conf_path], capture_output=True, env=dict(os.environ, **env), timeout=10)
    assert r.returncode == 1 and b"needs libcurl" in r.stderr, r.stderr


def _cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_over(pid, secs):
    t0 = _cpu_s(pid)
    time.sleep(secs)
    return _cpu_s(pid) - t0


def test_busy_polling_spins_after_work_and_sleeps_when_idle():
    """server.busy_poll_us: the loop polls instead of sleeping for that long
    after socket work (it spends its core), answers as it always does, sleeps
    again once idle, and a SIGHUP turns it off."""
    m = Mock()
    cfg = base_config(m, server={"busy_poll_us": 400000})
    s = Sluice(cfg)
    assert "busy polling: 400000 us" in s.stderr()
    pid = s.proc.pid
    time.sleep(0.5)  # past the window that the harness's port probe opened
    assert _cpu_over(pid, 0.5) < 0.1, "an idle gateway must sleep"
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat("spin"))
    assert st == 200 and j["choices"][0]["message"]["content"], j
    spent = _cpu_over(pid, 0.3)
    assert spent > 0.1, "no busy polling after a request: %.3f s of CPU in 0.3 s" % spent
    time.sleep(0.3)
    assert _cpu_over(pid, 0.5) < 0.1, "still spinning after the window"
    status, _, events, raw = stream(s.url + "/v1/chat/completions", chat("spin stream", stream=True))
    assert status == 200 and raw.rstrip().endswith(b"data: [DONE]") and len(events) > 2, raw
    cfg["server"] = {"busy_poll_us": 0}
    s.write_config(dict(cfg, listen="127.0.0.1:%d" % s.port, log={"access": s.access_path}))
    s.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert post_json(s.url + "/v1/chat/completions", chat("no spin"))[0] == 200
    assert _cpu_over(pid, 0.3) < 0.1, "busy polling still on after the reload turned it off"
    assert [l["status"] for l in s.wait_log(3)] == [200, 200, 200]
    s.stop()
