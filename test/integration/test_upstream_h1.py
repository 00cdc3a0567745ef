"""Issue #18: sluice's own HTTP/1.1 client for plain-http upstreams
(src/upstream/h1_client.c). Every other test talks to the mock over http://,
so they all run through it; these cover what is new: keep-alive reuse, a
stale pooled connection retried transparently (and a fresh one not),
`Connection: close`, chunked and close-delimited answers, 1xx interim answers
skipped, an oversized head refused cleanly, HEAD, and the pool's idle watch.

The odd upstreams are a tiny raw-socket server in this file (RawUpstream):
each accepted connection is served by `mode(conn_index, request_index)`."""
import json
import socket
import threading
import time

from harness import Mock, Sluice, base_config, chat, request

ANSWER = json.dumps({
    "id": "chatcmpl-raw", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "raw says hi"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
}).encode()


def fixed(body=ANSWER, extra=b""):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


def chunked(body=ANSWER):
    out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), 7):
        piece = body[i:i + 7]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


class RawUpstream:
    """Answers each request with `respond(conn_no, req_no)`: bytes to send, and
    whether to close afterwards (None as bytes: close without answering)."""

    def __init__(self, respond):
        self.respond = respond
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.connections = 0
        self.requests = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                n = self.connections
                self.connections += 1
            threading.Thread(target=self.serve, args=(c, n), daemon=True).start()

    def read_request(self, c, buf):
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None, b""
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
        while len(rest) < n:
            d = c.recv(65536)
            if not d:
                return None, b""
            rest += d
        return head, rest[n:]

    def serve(self, c, conn_no):
        buf = b""
        req_no = 0
        try:
            while True:
                head, buf = self.read_request(c, buf)
                if head is None:
                    return
                with self.lock:
                    self.requests.append(head)
                out, close = self.respond(conn_no, req_no)
                req_no += 1
                if out is None:
                    return
                for piece in (out if isinstance(out, list) else [out]):
                    c.sendall(piece)
                    if isinstance(out, list):
                        time.sleep(0.01)  # its own read on the other side
                if close:
                    return
        except OSError:
            return
        finally:
            c.close()

    def stop(self):
        self.sock.close()


def raw_stack(respond, **over):
    up = RawUpstream(respond)
    conf = base_config(up)
    conf["providers"][0]["base_url"] = up.url + "/v1"
    conf.update(over)
    return up, Sluice(conf)


def ask(s):
    """-> (status, headers, body bytes) of one chat call through sluice"""
    return request("POST", s.url + "/v1/chat/completions", chat("hi"))


def ask_ok(s, n, content="raw says hi"):
    """n calls in a row, each a 200 (carrying content, unless None)."""
    for _ in range(n):
        st, _, body = ask(s)
        assert st == 200, body
        if content is not None:
            assert json.loads(body)["choices"][0]["message"]["content"] == content, body


def test_h1_keepalive_reuses_one_upstream_connection():
    mock = Mock()
    s = Sluice(base_config(mock))
    try:
        before = mock.stats()["connections"]
        ask_ok(s, 20, content=None)
        after = mock.stats()["connections"]
        # one connection for sluice's 20 calls, one for each stats request
        assert after - before <= 2, (before, after)
    finally:
        s.stop()
        mock.stop()


def test_h1_stale_pooled_connection_is_retried_transparently():
    # connection 0 answers once, then drops the next request unanswered (its
    # keep-alive ran out as the request arrived); later connections answer
    up, s = raw_stack(lambda conn, req: (None, True) if conn == 0 and req == 1 else (fixed(), False))
    try:
        ask_ok(s, 3)
        assert up.connections == 2, up.connections
    finally:
        s.stop()
        up.stop()


def test_h1_fresh_connection_dropped_is_an_error_not_a_retry():
    up, s = raw_stack(lambda conn, req: (None, True))
    try:
        st, _, body = ask(s)
        assert st == 502, (st, body)
        assert json.loads(body)["error"]["type"] == "api_error", body
        # sluice's own retry policy may try again, but never on our hidden retry
        assert up.connections == len(up.requests), (up.connections, len(up.requests))
    finally:
        s.stop()
        up.stop()


def test_h1_connection_close_answers_are_not_reused():
    up, s = raw_stack(lambda conn, req: (fixed(extra=b"Connection: close\r\n"), True))
    try:
        ask_ok(s, 4, content=None)
        assert up.connections == 4, up.connections
    finally:
        s.stop()
        up.stop()


def test_h1_chunked_answer_and_reuse():
    up, s = raw_stack(lambda conn, req: (chunked(), False))
    try:
        ask_ok(s, 3)
        assert up.connections == 1, up.connections
    finally:
        s.stop()
        up.stop()


def test_h1_close_delimited_answer():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
    up, s = raw_stack(lambda conn, req: (head + ANSWER, True))
    try:
        ask_ok(s, 2)
        assert up.connections == 2, up.connections
    finally:
        s.stop()
        up.stop()


def test_h1_interim_1xx_answers_are_skipped():
    interim = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\nRetry-After: 99\r\n\r\n")
    up, s = raw_stack(lambda conn, req: (interim + fixed(), False))
    try:
        for _ in range(2):
            st, hdrs, body = ask(s)
            assert st == 200, body
            assert json.loads(body)["choices"][0]["message"]["content"] == "raw says hi"
        assert up.connections == 1, up.connections
    finally:
        s.stop()
        up.stop()


def test_h1_huge_answer_head_is_a_clean_error():
    big = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000)
                                              for i in range(80)) + b"Content-Length: 2\r\n\r\n{}"
    up, s = raw_stack(lambda conn, req: (big, False))
    try:
        st, _, body = ask(s)
        assert st == 502, (st, body[:300])
        err = json.loads(body)["error"]
        assert err["type"] == "api_error", err
        # sluice is still fine: the next call to a sane upstream works
        st, _, _ = request("GET", s.url + "/health")
        assert st == 200
    finally:
        s.stop()
        up.stop()


def test_h1_garbage_answer_is_a_clean_error():
    up, s = raw_stack(lambda conn, req: (b"SPDY/9 what\r\n\r\n", True))
    try:
        st, _, body = ask(s)
        assert st == 502, (st, body[:300])
        assert json.loads(body)["error"]["type"] == "api_error"
    finally:
        s.stop()
        up.stop()


def test_h1_idle_connection_closed_by_upstream_is_dropped_from_the_pool():
    # each connection answers once, then the upstream closes it a moment
    # later while it sits idle in sluice's pool: the next call gets a new one
    def respond(conn, req):
        return fixed(), False

    up, s = raw_stack(respond)
    orig_serve = up.serve

    def serve_then_close(c, n):
        c.settimeout(0.3)
        try:
            orig_serve(c, n)
        except OSError:
            pass

    up.serve = serve_then_close
    try:
        for _ in range(3):
            ask_ok(s, 1, content=None)
            time.sleep(0.6)  # the upstream's 0.3 s idle timeout closes it
        assert up.connections == 3, up.connections
    finally:
        s.stop()
        up.stop()


def test_h1_passthrough_head_has_no_body():
    mock = Mock()
    s = Sluice(base_config(mock, keys=[{"key": "sk-h1", "tenant": "h1"}]))
    try:
        st, _, body = request("HEAD", s.url + "/v1/models", headers={"Authorization": "Bearer sk-h1"})
        assert st == 200, (st, body)
        assert body == b""
        st, _, body = request("GET", s.url + "/v1/models", headers={"Authorization": "Bearer sk-h1"})
        assert st == 200 and json.loads(body)["object"] == "list", body
    finally:
        s.stop()
        mock.stop()


def test_h1_plain_heads_and_parsed_heads_read_alike():
    """A plain head that arrives whole is read without http_parser (head.h),
    its body counted off its Content-Length; a head in pieces, or one outside
    the plain shape, goes through http_parser. Either way: the same answer,
    and the connection kept exactly when HTTP/1.x says so."""
    whole = fixed()
    at = whole.index(b"\r\n\r\n") + 4
    cases = [
        ("plain head, body in three pieces", [whole[:at + 5], whole[at + 5:at + 40], whole[at + 40:]], False, 1),
        ("head in pieces (http_parser)", [whole[:10], whole[10:at - 3], whole[at - 3:]], False, 1),
        ("obs-text in a value (http_parser)", [fixed(extra=b"X-Note: caf\xe9\r\n")], False, 1),
        ("HTTP/1.0 keep-alive", [fixed().replace(b"HTTP/1.1", b"HTTP/1.0", 1)
                                 .replace(b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n", 1)], False, 1),
        ("HTTP/1.0, no keep-alive", [fixed().replace(b"HTTP/1.1", b"HTTP/1.0", 1)], True, 3),
    ]
    for name, pieces, close, conns in cases:
        up, s = raw_stack(lambda conn, req, p=pieces, c=close: (list(p), c))
        try:
            ask_ok(s, 3)
            assert up.connections == conns, (name, up.connections)
        finally:
            s.stop()
            up.stop()
