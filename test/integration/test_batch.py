"""Issue 21: micro-batched embeddings — concurrent /v1/embeddings requests share
one upstream call; each gets its own vectors, usage and cost. Vectors are
checked against a direct call to the mock, never against fixed values."""
import http.client, json, threading, time
from harness import Mock, Sluice, base_config, post_json

E = "/v1/embeddings"
PRICES = {"gpt-4o-mini": {"input": 0.15, "output": 0.60}, "emb": {"input": 0.02, "output": 0}}


def direct(m, inputs, **kw):
    """What the mock itself answers for these inputs: {input: vector}, usage."""
    b = dict({"model": "emb", "input": inputs}, **kw)
    j = post_json(m.url + "/v1/embeddings", b)[2]
    return {json.dumps(inputs[d["index"]]): d["embedding"] for d in j["data"]}, j["usage"]["prompt_tokens"]


def vecs(j):
    return [d["embedding"] for d in sorted(j["data"], key=lambda d: d["index"])]


def parallel(fns):
    out = [None] * len(fns)
    ts = [threading.Thread(target=lambda i=i: out.__setitem__(i, fns[i]())) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


def test_storm_2000_requests_200_connections():
    m = Mock()
    s = Sluice(base_config(m, embeddings={"batch": {"window_ms": 30, "max_inputs": 256}},
                           server={"max_connections": 1000}))
    n, conns = 2000, 200
    texts = ["storm input %d" % i for i in range(n)]
    got = [None] * n

    def client(c):
        h = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        for i in range(c, n, conns):
            h.request("POST", E, json.dumps({"model": "emb", "input": texts[i]}),
                      {"Content-Type": "application/json"})
            r = h.getresponse()
            got[i] = (r.status, r.getheader("x-sluice-batch"), json.loads(r.read()))
        h.close()
    before = m.stats()["requests"]
    parallel([lambda c=c: client(c) for c in range(conns)])
    calls = m.stats()["requests"] - before
    assert all(g and g[0] == 200 for g in got), [g for g in got if not g or g[0] != 200][:3]
    assert calls * 20 <= n, "%d upstream calls for %d requests" % (calls, n)
    want, _ = direct(m, texts)
    for i, g in enumerate(got):
        assert vecs(g[2]) == [want[json.dumps(texts[i])]], "request %d got another input's vector" % i
    assert max(int(g[1]) for g in got) > 20
    metrics = http.client.HTTPConnection("127.0.0.1", s.port)
    metrics.request("GET", "/metrics")
    text = metrics.getresponse().read().decode()
    assert "sluice_embedding_batches_total %d" % calls in text, [l for l in text.splitlines() if "embedding" in l]
    assert "sluice_embedding_batch_inputs_total %d" % n in text
    s.stop()


def test_each_gets_its_own_vectors_usage_and_cost():
    m = Mock()
    s = Sluice(base_config(m, prices=PRICES, embeddings={"batch": {"window_ms": 200}}))
    bodies = [["alpha one", "alpha two"], "beta", ["gamma one", "gamma two", "gamma three and more words"]]
    res = parallel([lambda b=b: post_json(s.url + E, {"model": "emb", "input": b}) for b in bodies])
    assert m.stats()["requests"] == 1
    flat = [x for b in bodies for x in (b if isinstance(b, list) else [b])]
    want, total = direct(m, flat)
    for b, (st, h, j, _) in zip(bodies, res):
        assert st == 200 and h["x-sluice-batch"] == "3", (st, h)
        mine = b if isinstance(b, list) else [b]
        assert vecs(j) == [want[json.dumps(x)] for x in mine]
        assert [d["index"] for d in j["data"]] == list(range(len(mine)))
    assert sum(r[2]["usage"]["prompt_tokens"] for r in res) == total
    log = s.wait_log(3)
    by_tokens = {l["prompt_tokens"]: l["cost_usd"] for l in log}
    assert all(abs(c - t * 0.02 / 1e6) < 1e-12 for t, c in by_tokens.items()), log
    # parameters split groups: another dimensions value is another call
    res = parallel([lambda: post_json(s.url + E, {"model": "emb", "input": "p", "dimensions": 4}),
                    lambda: post_json(s.url + E, {"model": "emb", "input": "q"})])
    assert all(r[0] == 200 and r[1]["x-sluice-batch"] == "1" for r in res)
    s.stop()


def test_known_inputs_are_not_sent_again():
    m = Mock()
    s = Sluice(base_config(m, cache={"enabled": True}, embeddings={"batch": {"window_ms": 2}}))
    post_json(s.url + E, {"model": "emb", "input": ["known a", "known b"]})
    mixed = ["new c", "known b", "new d", "known a"]
    st, h, j, _ = post_json(s.url + E, {"model": "emb", "input": mixed})
    assert st == 200 and json.loads(m.last()["body"])["input"] == ["new c", "new d"]
    want, _ = direct(m, mixed)
    assert vecs(j) == [want[json.dumps(x)] for x in mixed]
    calls = m.stats()["requests"]
    st, h, j, _ = post_json(s.url + E, {"model": "emb", "input": ["known a", "new d"]})
    assert st == 200 and h["x-sluice-cache"] == "hit" and m.stats()["requests"] == calls
    assert vecs(j) == [want[json.dumps("known a")], want[json.dumps("new d")]]
    s.stop()


def test_failed_batch_sends_each_alone():
    m = Mock()
    s = Sluice(base_config(m, retries={"max": 0, "base_ms": 1}, embeddings={"batch": {"window_ms": 150}}))
    m.config(fail_next=1)
    res = parallel([lambda i=i: post_json(s.url + E, {"model": "emb", "input": "alone %d" % i}) for i in range(4)])
    assert all(r[0] == 200 and "x-sluice-batch" not in r[1] for r in res), [r[:2] for r in res]
    assert m.stats()["requests"] == 5  # the failed batch, then each on its own
    want, _ = direct(m, ["alone %d" % i for i in range(4)])
    assert [vecs(r[2])[0] for r in res] == [want[json.dumps("alone %d" % i)] for i in range(4)]
    # window 0: no batching at all
    s.stop()
    s = Sluice(base_config(m, embeddings={"batch": {"window_ms": 0}}))
    before = m.stats()["requests"]
    res = parallel([lambda i=i: post_json(s.url + E, {"model": "emb", "input": "x %d" % i}) for i in range(3)])
    assert all(r[0] == 200 for r in res) and m.stats()["requests"] - before == 3
    s.stop()
