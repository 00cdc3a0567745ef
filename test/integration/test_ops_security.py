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
