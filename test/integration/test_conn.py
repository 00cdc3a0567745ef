"""Issue 18: sluice's own HTTP/1.1 connection layer (src/server/conn.c).
Every refusal is an OpenAI-shaped JSON error with an access-log line; pipelining,
HTTP/1.0, HEAD, 100-continue, client-gone and drain behave as specified."""
import json, os, re, signal, socket, threading, time
from harness import Mock, Sluice, base_config, chat, send_raw


def status_of(raw):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
    return int(m.group(1)) if m else None


def error_of(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length: (\d+)", head)
    return json.loads(body[:int(m.group(1))])["error"]


def req(path="/health/live", method="GET", host=b"Host: x\r\n", extra=b"", body=b"", version=b"HTTP/1.1"):
    if body:
        extra += b"Content-Length: %d\r\n" % len(body)
    return b"%s %s %s\r\n%s%s\r\n%s" % (method.encode(), path.encode(), version, host, extra, body)


def read_all(sock, timeout=3, until=None):
    sock.settimeout(timeout)
    out = b""
    try:
        while until is None or not until(out):
            got = sock.recv(65536)
            if not got:
                break
            out += got
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def test_refusals_are_precise_json_and_logged():
    m = Mock()
    s = Sluice(base_config(m, server={"max_body_bytes": "64KiB"}))
    chat_body = json.dumps(chat("refuse")).encode()
    chat_head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
    cases = [
        ("bad chunk size", 400, chat_head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
        ("overflowing chunk size", 400, chat_head + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n"),
        ("space before colon", 400, chat_head + b"Content-Length : 2\r\n\r\n{}"),
        ("tab before colon", 400, b"GET /health HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n"),
        ("obs-fold", 400, b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n"),
        ("missing host", 400, b"GET /health HTTP/1.1\r\n\r\n"),
        ("two hosts", 400, b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
        ("http/1.2", 400, b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n"),
        ("http/2.0", 400, b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n"),
        ("two authorization", 400, b"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n"),
        ("cl+te", 400, chat_head + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}"),
        ("differing cl", 400, chat_head + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        ("malformed request line", 400, b"GET\r\n\r\n"),
        ("413 before the body", 413, chat_head + b"Content-Length: 1000000\r\n\r\n"),
        ("414", 414, b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("431", 431, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n"),
        ("415 content-encoding", 415, chat_head + b"Content-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}"),
        ("501 transfer-encoding", 501, chat_head + b"Transfer-Encoding: gzip\r\n\r\n"),
        ("501 transfer-encoding list", 501, chat_head + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        ("two transfer-encodings", 400, chat_head + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n"),
        ("lf after a chunk size", 400, chat_head + b"Transfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n"),
        ("nul in a value", 400, b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ]
    for name, want, raw in cases:
        got = send_raw(s.port, raw, timeout=3)
        assert status_of(got) == want, (name, got[:300])
        e = error_of(got)  # OpenAI-shaped, never an HTML page
        assert set(e) >= {"message", "type", "param", "code"}, (name, e)
        assert b"connection: close" in got.lower(), (name, got[:300])
    log = s.wait_log(len(cases))
    assert [l["status"] for l in log] == [w for _, w, _ in cases], log
    assert m.stats()["requests"] == 0
    # the 413 is decided from Content-Length: no body byte was sent
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(chat_head + b"Content-Length: 70000\r\n\r\n")
    assert status_of(read_all(c, 2, lambda b: b"\r\n\r\n" in b)) == 413
    c.close()
    s.stop()


def test_accepted_forms_absolute_target_chunked_body_http10():
    m = Mock()
    s = Sluice(base_config(m))
    body = json.dumps(chat("chunked")).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:25], body[25:])) + b"0\r\n\r\n"
    got = send_raw(s.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert status_of(got) == 200, got[:300]
    assert json.loads(got.partition(b"\r\n\r\n")[2])["object"] == "chat.completion"
    assert json.loads(m.last()["body"]) == json.loads(body)  # the decoded body went upstream
    got = send_raw(s.port, req("http://sluice.example:8080/health/live?x=1"))
    assert status_of(got) == 200, got[:300]
    # HTTP/1.0 without Host, with and without keep-alive
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(b"GET /health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    first = read_all(c, 2, lambda b: b"\r\n\r\n" in b and b.endswith(b"}"))
    assert status_of(first) == 200 and b"connection: keep-alive" in first.lower(), first
    c.sendall(b"GET /health/live HTTP/1.0\r\n\r\n")
    second = read_all(c, 2)  # read until the server closes
    assert status_of(second) == 200 and b"connection: close" in second.lower(), second
    c.close()
    s.stop()


def test_nul_bare_cr_bare_lf_in_a_pipelined_head():
    m = Mock()
    s = Sluice(base_config(m))
    for bad in (b"X-A: a\x00b\r\n", b"X-A: a\rb\r\n", b"X-A: a\nX-B: b\r\n"):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(req() + b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + bad + b"\r\n" + req())
        out = read_all(c, 3)
        codes = [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]
        assert codes == [200, 400], (bad, out)  # the third request is never read
        c.close()
    s.stop()


def test_ten_pipelined_requests_answered_in_order():
    m = Mock()
    s = Sluice(base_config(m, cache={"enabled": True}))
    body = json.dumps(chat("pipelined")).encode()
    reqs = b""
    for i in range(10):
        if i % 3 == 1:
            reqs += req("/v1/chat/completions", "POST", extra=b"x-request-id: r%d\r\n" % i, body=body)
        elif i % 3 == 2:
            reqs += req("/nope", extra=b"x-request-id: r%d\r\n" % i)
        else:
            reqs += req("/health/live", extra=b"x-request-id: r%d\r\n" % i)
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(reqs)
    out = read_all(c, 5, lambda b: len(re.findall(rb"x-request-id: r\d", b)) == 10)
    c.close()
    ids = [int(x) for x in re.findall(rb"x-request-id: r(\d)", out)]
    assert ids == list(range(10)), out[:2000]
    codes = [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]
    assert codes == [200 if i % 3 != 2 else 404 for i in range(10)], codes
    s.stop()


def test_http10_stream_close_delimited_and_head_without_body():
    m = Mock()
    s = Sluice(base_config(m))
    body = json.dumps(chat("old", stream=True)).encode()
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(b"POST /v1/chat/completions HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    out = read_all(c, 5)  # ends only because the server closes: close-delimited
    c.close()
    head, _, rest = out.partition(b"\r\n\r\n")
    assert b"content-length" not in head.lower() and b"chunked" not in head.lower(), head
    assert b"connection: close" in head.lower() and rest.rstrip().endswith(b"data: [DONE]"), out[-300:]
    # HEAD: the head of the GET answer, never a body, and the connection goes on
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(req("/health/live", "HEAD") + req("/health/live"))
    out = read_all(c, 2, lambda b: b.count(b"HTTP/1.1 200") == 2 and b.endswith(b"}"))
    c.close()
    first, _, rest = out.partition(b"\r\n\r\n")
    assert re.search(rb"(?i)content-length: [1-9]", first), first
    assert rest.startswith(b"HTTP/1.1 200"), out  # no body between the two answers
    s.stop()


def _gone_case(pipelined_behind):
    m = Mock()
    s = Sluice(base_config(m))
    m.config(delay_ms=3000)
    body = json.dumps(chat("gone %s" % pipelined_behind)).encode()
    c = socket.create_connection(("127.0.0.1", s.port))
    raw = req("/v1/chat/completions", "POST", body=body)
    if pipelined_behind:
        raw += req("/health/live")
    c.sendall(raw)
    t0 = time.time()
    while m.stats()["inflight"] == 0 and time.time() - t0 < 2:
        time.sleep(0.01)
    c.close()
    t0 = time.time()
    while m.stats()["disconnects"] == 0 and time.time() - t0 < 1:
        time.sleep(0.01)
    assert m.stats()["disconnects"] == 1, m.stats()  # the upstream call was cancelled at once
    assert time.time() - t0 < 0.3
    log = s.wait_log(1)
    assert log[0]["status"] == 499 and log[0]["error"] == "client closed", log
    s.stop()


def test_client_gone_during_a_wait_cancels_upstream():
    _gone_case(False)


def test_client_gone_with_a_pipelined_request_behind_the_wait():
    _gone_case(True)


def test_expect_100_continue_only_after_the_key_was_checked():
    m = Mock()
    s = Sluice(base_config(m, keys=[{"key": "sk-good", "tenant": "t"}]))
    body = json.dumps(chat("continue")).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n" % len(body)
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(head + b"Authorization: Bearer sk-bad\r\n\r\n")
    out = read_all(c, 2, lambda b: b"\r\n\r\n" in b and b.endswith(b"}"))
    assert status_of(out) == 401 and b"100 Continue" not in out, out
    assert error_of(out)["code"] == "invalid_api_key"
    c.close()
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(head + b"Authorization: Bearer sk-good\r\n\r\n")
    interim = read_all(c, 2, lambda b: b"\r\n\r\n" in b)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
    c.sendall(body)
    out = read_all(c, 3, lambda b: b"\r\n\r\n" in b and b.endswith(b"}"))
    assert status_of(out) == 200, out[:300]
    c.close()
    assert m.stats()["requests"] == 1
    s.stop()


def test_body_deadline_408():
    m = Mock()
    s = Sluice(base_config(m, server={"header_timeout_s": 5, "body_timeout_s": 1}))
    c = socket.create_connection(("127.0.0.1", s.port))
    t0 = time.time()
    c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mod")
    out = read_all(c, 4)
    assert status_of(out) == 408 and error_of(out)["code"] == "request_timeout", out
    assert 0.8 < time.time() - t0 < 2.5, time.time() - t0
    c.close()
    assert s.wait_log(1)[0]["status"] == 408
    s.stop()


def test_drain_answers_carry_connection_close():
    m = Mock()
    s = Sluice(base_config(m))
    m.config(delay_ms=600)
    body = json.dumps(chat("drain")).encode()
    busy = socket.create_connection(("127.0.0.1", s.port))
    idle = socket.create_connection(("127.0.0.1", s.port))
    idle.sendall(req())
    assert status_of(read_all(idle, 2, lambda b: b.endswith(b"}"))) == 200
    busy.sendall(req("/v1/chat/completions", "POST", body=body))
    t0 = time.time()
    while m.stats()["inflight"] == 0 and time.time() - t0 < 2:
        time.sleep(0.01)
    s.signal(signal.SIGTERM)
    assert read_all(idle, 2) == b""  # the idle keep-alive connection is closed at once
    out = read_all(busy, 4)  # in flight: answered, with Connection: close, then closed
    assert status_of(out) == 200 and b"connection: close" in out.lower(), out[:400]
    busy.close()
    idle.close()
    assert s.proc.wait(10) == 0
    s.stop()


def test_slow_reader_pauses_the_upstream_and_loses_nothing():
    _slow_reader(cache=False)


def test_slow_reader_pauses_a_coalescing_leader_too():
    _slow_reader(cache=True)  # the cache on: the answer runs through the flight's fan-out sink


def test_slow_reader_pauses_a_curl_upstream_too():
    _slow_reader(cache=False, host="localhost")  # a host name: the call goes through libcurl


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _slow_reader(cache, host=None):
    m = Mock()
    over = {"cache": {"enabled": cache}}
    if host:
        over["providers"] = [{"name": "mock", "kind": "openai", "base_url": m.url.replace("127.0.0.1", host) + "/v1",
                              "api_key": "sk-upstream-secret", "models": ["*"]}]
    s = Sluice(base_config(m, **over))
    chunks = 300
    m.config(stream_chunks=chunks, chunk_pad=20000)  # a 6 MB stream
    body = json.dumps(chat("MOCK_REPLY:" + " ".join("w%d" % i for i in range(chunks)), stream=True)).encode()
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # a slow reader: a small window
    c.connect(("127.0.0.1", s.port))
    c.sendall(req("/v1/chat/completions", "POST", body=body))
    time.sleep(0.5)
    cpu0 = _cpu_seconds(s.proc.pid)
    time.sleep(1.5)  # not reading: sluice must not read the whole stream into memory
    # ... nor spin while the upstream call waits for it: a paused call's socket
    # is not watched (it had bytes ready: level-triggered, it woke the loop
    # at once, again and again, a core burnt until the client read)
    busy = _cpu_seconds(s.proc.pid) - cpu0
    assert busy < 0.5, "sluice used %.2f s of CPU in 1.5 s while its client read nothing" % busy
    assert s.access_log() == [], "the stream completed while the client read nothing"
    out = read_all(c, 10, lambda b: b.endswith(b"0\r\n\r\n"))
    c.close()
    assert out.count(b"\"x_pad\"") == chunks + 2 and b"data: [DONE]" in out, (out.count(b'"x_pad"'), out[-200:])
    log = s.wait_log(1)
    assert log[0]["status"] == 200 and log[0]["stream"] is True, log  # paused longer than idle_ms, not cut
    s.stop()


def test_a_client_that_stops_reading_is_dropped_and_its_upstream_cancelled():
    m = Mock()
    s = Sluice(base_config(m, server={"idle_timeout_s": 1}))
    chunks = 300
    m.config(stream_chunks=chunks, chunk_pad=20000)
    body = json.dumps(chat("MOCK_REPLY:" + " ".join("w%d" % i for i in range(chunks)), stream=True)).encode()
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    c.connect(("127.0.0.1", s.port))
    c.sendall(req("/v1/chat/completions", "POST", body=body))
    t0 = time.time()
    log = s.wait_log(1, timeout=6)  # the paused call does not hang on forever
    assert log and log[0]["status"] == 499 and log[0]["error"] == "client closed", log
    assert time.time() - t0 < 4, time.time() - t0  # idle_timeout_s after the output stalled
    c.close()
    s.stop()


def test_heads_past_the_inline_header_slots():
    """Issue 18 (memory per connection): a connection has 24 header slots
    inline and takes 100 on the heap only for a larger head, given back for
    the next request. Headers past the inline ones are read (x-request-id
    as the 60th); the next, small head on the connection too; 101 are a 431."""
    m = Mock()
    s = Sluice(base_config(m))
    filler = b"".join(b"X-Fill-%d: v\r\n" % i for i in range(58))
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(req(extra=filler + b"x-request-id: big-head\r\n") + req(extra=b"x-request-id: small-head\r\n"))
    out = read_all(c, 5, lambda b: b"small-head" in b)
    c.close()
    assert [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)] == [200, 200], out
    assert re.findall(rb"x-request-id: ([a-z-]+)", out) == [b"big-head", b"small-head"], out
    many = b"".join(b"X-Fill-%d: v\r\n" % i for i in range(101))
    assert status_of(send_raw(s.port, req(extra=many))) == 431
    s.stop()


def test_keepalive_deadline_moves_with_each_request():
    """Deadlines are lazy (conn.c's arm): a request on a kept-alive connection
    moves its deadline later without re-arming the timer, which fires at the
    old time and re-arms itself. The connection must live until idle +
    header timeout after its *last* answer, not its first, and be reaped then."""
    m = Mock()
    s = Sluice(base_config(m, server={"header_timeout_s": 1, "idle_timeout_s": 1}))
    c = socket.create_connection(("127.0.0.1", s.port))
    t_last = None
    for _ in range(3):  # at 0, 1.4 and 2.8 s: past the first answer's deadline (2 s)
        c.sendall(req())
        out = read_all(c, 2, lambda b: b.endswith(b"}"))
        assert status_of(out) == 200, out[:200]
        t_last = time.time()
        time.sleep(1.4)
    c.settimeout(4)
    try:
        got = c.recv(65536)  # nothing more, then the close: reaped silently
    except ConnectionResetError:
        got = b""
    waited = time.time() - t_last
    assert got == b"", got[:100]
    assert 1.8 < waited < 3.2, waited  # 2 s after the last answer
    c.close()
    s.stop()
