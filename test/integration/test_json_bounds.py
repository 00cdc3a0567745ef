"""Issue 17 item 1: one request must never freeze the loop. An object of
100k distinct keys cost 39 s of parsing (a duplicate-key scan per member);
it now parses in linear time, and members per object and values per body are
bounded by server.max_json_members / server.max_json_values (400 naming them)."""
import json, threading, time
from harness import Mock, Sluice, base_config, chat, post_json, request


def many_keys_body(n):
    return json.dumps(chat("many keys", metadata={"k%06d" % i: i for i in range(n)}))


def answer_in_background(url, body, timeout=20):
    out = {}

    def run():
        t0 = time.time()
        out["reply"] = post_json(url, body, timeout=timeout)
        out["s"] = time.time() - t0

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def health_latencies_while(t, url):
    """Latencies of /health/live polled while thread t runs (and once after)."""
    lat = []
    while True:
        alive = t.is_alive()
        t0 = time.time()
        st, _, _ = request("GET", url + "/health/live", timeout=3)
        lat.append(time.time() - t0)
        assert st == 200
        if not alive:
            return lat
        time.sleep(0.05)


def test_100k_keys_parsed_without_freezing_the_loop():
    m = Mock()
    s = Sluice(base_config(m, server={"max_json_members": 200000}))
    body = many_keys_body(100000)  # ~1.4 MiB, under the 8 MiB body bound
    assert len(body) < 8 << 20
    t, out = answer_in_background(s.url + "/v1/chat/completions", body)
    lat = health_latencies_while(t, s.url)
    t.join(20)
    st, h, j, raw = out["reply"]
    assert st == 200, raw[:300]
    assert j["choices"][0]["message"]["content"]
    assert out["s"] < 5, "100k keys took %.1f s" % out["s"]
    assert max(lat) < 1.0, "health/live stalled %.2f s" % max(lat)
    s.stop()


def test_members_over_the_bound_get_400_fast():
    m = Mock()
    s = Sluice(base_config(m))  # default bound: 10000 members
    t, out = answer_in_background(s.url + "/v1/chat/completions", many_keys_body(100000))
    lat = health_latencies_while(t, s.url)
    t.join(20)
    st, h, j, raw = out["reply"]
    assert st == 400, raw[:300]
    err = j["error"]
    assert err["code"] == "too_many_json_members" and err["type"] == "invalid_request_error"
    assert "server.max_json_members" in err["message"] and "10000" in err["message"]
    assert out["s"] < 3 and max(lat) < 1.0, (out["s"], max(lat))
    assert m.stats()["requests"] == 0
    # just under the bound is fine
    st, _, _, raw = post_json(s.url + "/v1/chat/completions", many_keys_body(9990))
    assert st == 200, raw[:300]
    s.stop()


def test_values_over_the_bound_get_400():
    m = Mock()
    s = Sluice(base_config(m, server={"max_json_values": 1000}))
    body = json.dumps(chat("many values", metadata={"tags": list(range(2000))}))
    st, _, j, raw = post_json(s.url + "/v1/chat/completions", body)
    assert st == 400, raw[:300]
    assert j["error"]["code"] == "too_many_json_values"
    assert "server.max_json_values" in j["error"]["message"]
    assert post_json(s.url + "/v1/chat/completions", chat("few values"))[0] == 200
    assert m.stats()["requests"] == 1
    s.stop()
