"""Issue 16, part 2: every other /v1/* route is passed through to the first
openai-kind provider with `passthrough` on (src/stages/passthrough.c).

The mock's probes (/v1/pt/echo, /v1/pt/bytes, /v1/pt/usage) report what
arrived and answer with hop-by-hop headers sluice must drop. Covered: method,
query, content type, body, status and headers relayed; the client's key never
upstream; rpm counted; the access-log line and the bounded metrics label; no
caching; a 25 MB upload and a slowly read 32 MB answer streamed within bounded
memory (VmHWM of sluice); a provider that is down; passthrough off."""
import hashlib
import http.client
import json
import socket
import threading
import time
import zlib

from harness import Mock, Sluice, base_config, request

KEY = "sk-pt-client"
KEYS = [{"key": KEY, "tenant": "pt"}]
AUTH = {"Authorization": "Bearer " + KEY}


def crc(data):
    return "%08x" % zlib.crc32(data)


def stack(**over):
    mock = Mock()
    over.setdefault("keys", KEYS)
    return mock, Sluice(base_config(mock, **over))


def vm(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field)


def test_passthrough_relays_method_query_type_body_and_status():
    mock, s = stack()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        body = None if method in ("GET", "DELETE") else "hello %s" % method
        st, h, raw = request(method, s.url + "/v1/pt/echo?x=1&y=two%20words", body=body,
                             headers=dict(AUTH, **{"Content-Type": "text/plain; charset=utf-8",
                                                   "OpenAI-Beta": "assistants=v2"}))
        assert st == 200, (method, st, raw)
        e = json.loads(raw)
        assert e["method"] == method and e["path"] == "/v1/pt/echo", e
        assert e["query"] == "x=1&y=two%20words", e
        assert e["body"] == (body or "") and e["bytes"] == len(body or ""), e
        last = mock.last()
        assert last["headers"]["content-type"] == "text/plain; charset=utf-8", last
        assert last["headers"]["openai-beta"] == "assistants=v2", last
        assert h["x-sluice-provider"] == "mock" and h["x-sluice-cache"] == "bypass", h
    # an empty POST stays a POST (POST /v1/batches/{id}/cancel has no body)
    st, _, raw = request("POST", s.url + "/v1/pt/echo", body=b"", headers=AUTH)
    assert st == 200 and json.loads(raw)["method"] == "POST", raw
    # the provider's status and body, as it answered
    st, h, raw = request("POST", s.url + "/v1/pt/echo?status=201", body="{}", headers=AUTH)
    assert st == 201 and json.loads(raw)["method"] == "POST", (st, raw)
    st, h, raw = request("GET", s.url + "/v1/pt/nowhere", headers=AUTH)
    assert st == 404 and json.loads(raw)["error"]["message"] == "not found", (st, raw)
    s.stop()
    mock.stop()


def test_passthrough_headers_hop_by_hop_removed():
    mock, s = stack()
    st, h, raw = request("POST", s.url + "/v1/pt/echo", body="{}", headers=AUTH)
    assert st == 200 and h["x-mock-echo"] == "yes", h
    for hop in ("keep-alive", "proxy-authenticate", "upgrade", "x-mock-hop"):
        assert hop not in h, (hop, h)
    assert h["x-sluice-cache"] == "bypass", h  # the provider's x-sluice-* never passes
    assert h["content-type"] == "application/json", h
    assert h["x-request-id"] and len([k for k in h if k == "content-length"]) == 1, h
    # the client's hop-by-hop headers do not go upstream either
    st, _, _ = request("POST", s.url + "/v1/pt/echo", body="{}",
                       headers=dict(AUTH, **{"Keep-Alive": "timeout=9", "Upgrade": "websocket",
                                             "Cookie": "a=b"}))
    got = mock.last()["headers"]
    assert st == 200 and "keep-alive" not in got and "upgrade" not in got and "cookie" not in got, got
    s.stop()
    mock.stop()


def test_passthrough_sends_the_providers_key_never_the_clients():
    mock, s = stack()
    for h in (AUTH, {"x-api-key": KEY}):
        st, _, raw = request("POST", s.url + "/v1/pt/echo", body='{"a":1}', headers=h)
        assert st == 200, raw
        last = mock.last()
        assert last["headers"]["authorization"] == "Bearer sk-upstream-secret", last["headers"]
        assert KEY not in json.dumps(last), last
    st, _, raw = request("POST", s.url + "/v1/pt/echo", body="{}", headers={"Authorization": "Bearer nope"})
    assert st == 401 and json.loads(raw)["error"]["code"] == "invalid_api_key", raw
    assert mock.stats()["requests"] == 2, mock.stats()
    s.stop()
    mock.stop()


def test_passthrough_counts_against_rpm():
    mock, s = stack(keys=[{"key": KEY, "tenant": "pt", "rpm": 3}])
    got = [request("POST", s.url + "/v1/pt/echo", body="{}", headers=AUTH)[0] for _ in range(4)]
    assert got == [200, 200, 200, 429], got
    st, h, raw = request("GET", s.url + "/v1/pt/echo", headers=AUTH)
    e = json.loads(raw)["error"]
    assert st == 429 and e["code"] == "rate_limit_exceeded" and "retry-after" in h, (st, raw)
    assert mock.stats()["requests"] == 3, mock.stats()
    s.stop()
    mock.stop()


def test_passthrough_access_log_and_metrics():
    mock, s = stack()
    st, _, _ = request("POST", s.url + "/v1/pt/echo?q=1", body="{}", headers=AUTH)
    assert st == 200
    line = s.wait_log(1)[-1]
    assert line["path"] == "/v1/pt/echo" and line["method"] == "POST" and line["status"] == 200, line
    assert line["tenant"] == "pt" and line["provider"] == "mock" and line["cache"] == "bypass", line
    assert "q=1" not in json.dumps(line) or line["path"] == "/v1/pt/echo"
    for p in ("/v1/pt/a1", "/v1/pt/b2", "/v1/pt/c3"):
        request("GET", s.url + p, headers=AUTH)
    _, _, text = request("GET", s.url + "/metrics")
    text = text.decode()
    assert 'route="/v1/{passthrough}"' in text, text[:2000]
    assert "/v1/pt/a1" not in text and "/v1/pt/echo" not in text  # labels stay bounded
    s.stop()
    mock.stop()


def test_passthrough_prices_a_small_json_answer_with_usage():
    mock, s = stack()
    st, h, raw = request("POST", s.url + "/v1/pt/usage", body="{}", headers=AUTH)
    assert st == 200 and json.loads(raw)["usage"]["prompt_tokens"] == 1000, raw
    # gpt-4o-mini: 1000 x 0.15 + 2000 x 0.60 per 1M tokens
    assert h["x-sluice-cost-usd"] == "0.00135000", h
    line = s.wait_log(1)[-1]
    assert line["prompt_tokens"] == 1000 and line["completion_tokens"] == 2000, line
    assert abs(line["cost_usd"] - 0.00135) < 1e-9 and line["model"] == "gpt-4o-mini", line
    s.stop()
    mock.stop()


def test_passthrough_never_caches():
    mock, s = stack(cache={"enabled": True, "ttl_s": 60})
    for _ in range(2):
        st, h, _ = request("POST", s.url + "/v1/pt/echo", body='{"same":1}', headers=AUTH)
        assert st == 200 and h["x-sluice-cache"] == "bypass", h
    assert mock.stats()["requests"] == 2, mock.stats()
    s.stop()
    mock.stop()


def test_passthrough_exact_routes_keep_precedence():
    mock, s = stack()
    # pass-through calls first: their pooled curl handles must not carry a
    # method, upload or NOBODY into the chat call after them
    for method, body in (("DELETE", None), ("HEAD", None), ("PUT", "x" * 70000), ("PATCH", "{}")):
        st, _, _ = request(method, s.url + "/v1/pt/echo", body=body, headers=AUTH)
        assert st == 200, (method, st)
    mock.reset()
    st, h, raw = request("POST", s.url + "/v1/chat/completions", headers=AUTH,
                         body={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert st == 200 and json.loads(raw)["object"] == "chat.completion", raw
    assert mock.stats()["by_path"]["/v1/chat/completions"] == 1, mock.stats()
    st, _, raw = request("GET", s.url + "/v1/chat/completions", headers=AUTH)
    assert st == 405, raw  # the exact row answers, not the pass-through
    # ... but /v1/responses/input_tokens is no response id: the provider's (the mock's 404)
    st, h, raw = request("POST", s.url + "/v1/responses/input_tokens", body="{}", headers=AUTH)
    assert st == 404 and json.loads(raw)["error"]["message"] == "not found", raw
    assert h["x-sluice-provider"] == "mock", h
    assert mock.stats()["requests"] == 1
    s.stop()
    mock.stop()


class SlowProvider:
    """One-shot provider that reads a request body slowly (256 KiB every 10 ms
    through a small receive buffer): sluice must hold the client back, not
    buffer the difference. Answers {"bytes", "crc32"}."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.url = "http://127.0.0.1:%d/v1" % self.ls.getsockname()[1]
        self.head = b""
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        c, _ = self.ls.accept()
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += c.recv(4096)
        self.head, _, body = buf.partition(b"\r\n\r\n")
        n = int([l.split(b":")[1] for l in self.head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
        got, crc32 = len(body), zlib.crc32(body)
        while got < n:
            time.sleep(0.01)
            b = c.recv(256 * 1024)
            if not b:
                break
            got += len(b)
            crc32 = zlib.crc32(b, crc32)
        out = json.dumps({"bytes": got, "crc32": "%08x" % crc32}).encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(out), out))
        c.close()
        self.ls.close()


def test_passthrough_upload_of_25mb_streams_in_bounded_memory():
    size, piece = 25 * 1024 * 1024, bytes(range(256)) * 256  # 64 KiB
    slow = SlowProvider()
    mock = Mock()
    c = base_config(mock, keys=KEYS, timeouts={"connect_ms": 500, "first_byte_ms": 5000, "idle_ms": 5000})
    c["providers"][0]["base_url"] = slow.url
    c["providers"].append({"name": "mock", "kind": "openai", "base_url": mock.url + "/v1", "passthrough": False})
    c["providers"][0]["name"] = "slow"
    s = Sluice(c)
    request("POST", s.url + "/v1/pt/echo", body="x" * 100000, headers={"Authorization": "Bearer no"})  # warm up
    before = vm(s.proc.pid, "VmRSS")
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    c.putrequest("POST", "/v1/pt/echo")
    c.putheader("Authorization", "Bearer " + KEY)
    c.putheader("Content-Type", "application/octet-stream")
    c.putheader("Content-Length", str(size))
    c.endheaders()
    for _ in range(size // len(piece)):
        c.send(piece)
    r = c.getresponse()
    e = json.loads(r.read())
    c.close()
    assert r.status == 200 and e["bytes"] == size, e
    assert e["crc32"] == crc(piece * (size // len(piece))), e  # every byte arrived, in order
    grew = vm(s.proc.pid, "VmHWM") - before
    assert grew < 8 * 1024 * 1024, "sluice's peak RSS grew by %d bytes for a 25 MB upload" % grew
    assert b"content-length: %d" % size in slow.head.lower(), slow.head  # the length went along
    s.stop()
    # chunked too (no Content-Length): forwarded chunked, to the mock
    s = Sluice(base_config(mock, keys=KEYS))
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    c.request("PUT", "/v1/pt/echo", body=iter([piece] * 16), headers=dict(AUTH), encode_chunked=True)
    r = c.getresponse()
    e = json.loads(r.read())
    assert r.status == 200 and e["bytes"] == 16 * len(piece) and e["method"] == "PUT", e
    s.stop()
    mock.stop()


def test_passthrough_slow_reader_of_a_big_binary_answer():
    mock, s = stack(timeouts={"connect_ms": 500, "first_byte_ms": 2000, "total_ms": 5000, "idle_ms": 1000})
    n = 32 * 1024 * 1024
    request("GET", s.url + "/v1/pt/bytes?n=10", headers=AUTH)
    before = vm(s.proc.pid, "VmRSS")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(("GET /v1/pt/bytes?n=%d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Connection: close\r\n\r\n" % (n, KEY)).encode())
    got = bytearray(sock.recv(65536))
    time.sleep(2.5)  # longer than idle_ms and the total budget's share: the paused call waits
    mid = vm(s.proc.pid, "VmRSS")
    while True:
        b = sock.recv(1 << 20)
        if not b:
            break
        got += b
    sock.close()
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"application/octet-stream" in head.lower(), head
    assert b"transfer-encoding: chunked" in head.lower(), head
    data, at = bytearray(), 0
    while True:  # de-chunk
        eol = body.index(b"\r\n", at)
        k = int(body[at:eol], 16)
        if k == 0:
            break
        data += body[eol + 2:eol + 2 + k]
        at = eol + 4 + k
    assert len(data) == n, len(data)
    want = hashlib.sha256(bytes(((i * 31 + 7) & 0xFF) for i in range(256)) * (n // 256)).hexdigest()
    assert hashlib.sha256(data).hexdigest() == want  # (the pattern repeats every 256 bytes)
    assert mid - before < 12 * 1024 * 1024, "sluice held %d bytes for a slow reader" % (mid - before)
    line = s.wait_log(3)[-1]
    assert line["status"] == 200 and line["bytes_out"] >= n, line
    s.stop()
    mock.stop()


def test_passthrough_provider_down_is_502():
    mock = Mock()
    c = base_config(mock, keys=KEYS)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    c["providers"][0]["base_url"] = "http://127.0.0.1:%d/v1" % dead.getsockname()[1]
    dead.close()
    s = Sluice(c)
    st, h, raw = request("POST", s.url + "/v1/moderations", body='{"input":"x"}', headers=AUTH)
    e = json.loads(raw)["error"]
    assert st == 502 and e["code"] == "upstream_unavailable" and e["type"] == "api_error", raw
    assert set(e) == {"message", "type", "param", "code"}, e
    assert s.wait_log(1)[-1]["status"] == 502
    s.stop()
    mock.stop()


def test_passthrough_off_everywhere_is_404():
    mock = Mock()
    c = base_config(mock, keys=KEYS)
    c["providers"][0]["passthrough"] = False
    c["providers"].append({"name": "claude", "kind": "anthropic", "base_url": mock.url,
                           "api_key": "sk-a", "models": ["claude-*"], "passthrough": True})
    s = Sluice(c)
    st, _, raw = request("POST", s.url + "/v1/moderations", body='{"input":"x"}', headers=AUTH)
    e = json.loads(raw)["error"]
    assert st == 404 and e["code"] == "unknown_url" and set(e) == {"message", "type", "param", "code"}, raw
    assert mock.stats()["requests"] == 0
    s.stop()
    # the first openai-kind provider is the default; another one can be chosen instead
    c["providers"] = [
        {"name": "a", "kind": "openai", "base_url": mock.url + "/v1", "api_key": "sk-a", "passthrough": False},
        {"name": "b", "kind": "openai", "base_url": mock.url + "/v1", "api_key": "sk-b", "passthrough": True},
    ]
    s = Sluice(c)
    st, h, _ = request("POST", s.url + "/v1/pt/echo", body="{}", headers=AUTH)
    assert st == 200 and h["x-sluice-provider"] == "b", h
    assert mock.last()["headers"]["authorization"] == "Bearer sk-b"
    s.stop()
    mock.stop()


def test_passthrough_answer_cut_short_is_not_completed():
    """A provider that promises 1 MiB and closes after 200 KiB: the client's
    chunked answer ends without its last chunk and the connection closes, so
    the client knows it is incomplete."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)

    def serve():
        c, _ = ls.accept()
        buf = b""
        while b"\r\n\r\n" not in buf or not buf.endswith(b"{}"):  # all of it: no RST on close
            buf += c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: 1048576\r\n\r\n")
        c.sendall(b"\x01" * 200 * 1024)
        c.shutdown(socket.SHUT_WR)
        time.sleep(0.5)
        c.close()
        ls.close()

    threading.Thread(target=serve, daemon=True).start()
    mock = Mock()
    c = base_config(mock, keys=KEYS)
    c["providers"][0]["base_url"] = "http://127.0.0.1:%d/v1" % ls.getsockname()[1]
    s = Sluice(c)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(("POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Content-Length: 2\r\n\r\n{}" % KEY).encode())
    got = b""
    while True:
        b = sock.recv(65536)
        if not b:
            break
        got += b
    sock.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"audio/mpeg" in head, head
    assert not body.endswith(b"0\r\n\r\n") and len(body) >= 200 * 1024, (len(body), body[-20:])
    line = s.wait_log(1)[-1]
    assert line["status"] == 200 and line["error"], line
    s.stop()
    mock.stop()


def test_passthrough_client_gone_mid_upload_and_mid_answer():
    """The upstream call is cancelled, nothing leaks (ASan at stop), sluice goes on."""
    mock, s = stack()
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(("POST /v1/pt/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Content-Length: 10000000\r\n\r\n" % KEY).encode() + b"x" * 300000)
    time.sleep(0.3)
    sock.close()
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(("GET /v1/pt/bytes?n=20000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % KEY).encode())
    sock.recv(1000)
    time.sleep(0.3)
    sock.close()
    lines = s.wait_log(2)
    assert [l["status"] for l in lines[-2:]] == [499, 499], lines
    st, _, raw = request("POST", s.url + "/v1/pt/echo", body="after", headers=AUTH)
    assert st == 200 and json.loads(raw)["body"] == "after", raw
    s.stop()
    mock.stop()
