"""Issue 17 item 9: a cache hit must answer what the provider answered, in
either form. With `logprobs: true`, a streamed answer replayed as plain (or
the reverse) said `"logprobs": null` and lost usage.prompt_tokens_details
while reporting a hit. Each replay is compared field by field with a direct
answer of the provider (the mock, asked without sluice in between)."""
import json
from harness import Mock, Sluice, base_config, chat, post_json, stream

MOCK_CHUNKS = 4


def ask(content, **kw):
    return chat("fidelity " + content, logprobs=True, top_logprobs=0, **kw)


def fold(events):
    """A stream folded into the chat.completion it stands for, the way client
    SDKs accumulate chunks: text deltas and logprobs arrays joined, other
    fields the last one sent."""
    out, choices = {}, {}
    assert events[-1] == "[DONE]", events[-3:]
    for raw in events[:-1]:
        c = json.loads(raw)
        for k, v in c.items():
            if k != "choices" and not (k == "usage" and v is None):
                out[k] = v
        for ch in c["choices"]:
            slot = choices.setdefault(ch["index"], {"index": ch["index"], "message": {},
                                                    "logprobs": None, "finish_reason": None})
            for k, v in ch.get("delta", {}).items():
                msg = slot["message"]
                if isinstance(v, str) and k != "role" and isinstance(msg.get(k), str):
                    msg[k] += v
                elif v is not None or k not in msg:
                    msg[k] = v
            lp = ch.get("logprobs")
            if lp is not None:
                acc = slot["logprobs"] = slot["logprobs"] or {}
                for k, v in lp.items():
                    if isinstance(v, list) and isinstance(acc.get(k), list):
                        acc[k] += v
                    elif v is not None or k not in acc:
                        acc[k] = v
            for k, v in ch.items():
                if k not in ("index", "delta", "logprobs") and v is not None:
                    slot[k] = v
    out["object"] = "chat.completion"
    out["choices"] = [choices[i] for i in sorted(choices)]
    return out


def same(got, want, what):
    """Field by field, naming the first difference."""
    def walk(g, w, path):
        if isinstance(w, dict) and isinstance(g, dict):
            for k in set(g) | set(w):
                assert k in g, "%s: %s missing" % (what, path + "." + k)
                assert k in w, "%s: %s extra (%r)" % (what, path + "." + k, g[k])
                walk(g[k], w[k], path + "." + k)
        elif isinstance(w, list) and isinstance(g, list):
            assert len(g) == len(w), "%s: %s has %d items, want %d" % (what, path, len(g), len(w))
            for i, (a, b) in enumerate(zip(g, w)):
                walk(a, b, "%s[%d]" % (path, i))
        else:
            assert g == w, "%s: %s is %r, want %r" % (what, path, g, w)
    walk(got, want, "")


def direct(m, body):
    """The provider's own answers: plain, and streamed (folded, and its chunks)."""
    st, _, plain, _ = post_json(m.url + "/v1/chat/completions", body)
    assert st == 200
    st, _, ev, _ = stream(m.url + "/v1/chat/completions",
                          dict(body, stream=True, stream_options={"include_usage": True}))
    assert st == 200
    return plain, fold(ev), ev


def check_stream_chunks(ev, direct_ev, what):
    for raw in ev[:-1]:
        c = json.loads(raw)
        assert c["system_fingerprint"] == "fp_mock" and c["service_tier"] == "default", (what, c)
    assert json.loads(ev[-2])["usage"] == json.loads(direct_ev[-2])["usage"], what


def test_cache_hits_keep_every_field_in_both_forms():
    m = Mock()
    m.config(stream_chunks=MOCK_CHUNKS)
    s = Sluice(base_config(m, cache={"enabled": True, "ttl_s": 60}))
    u = s.url + "/v1/chat/completions"
    so = {"stream": True, "stream_options": {"include_usage": True}}

    # the mock's two forms agree: the reference is one answer
    plain, folded, _ = direct(m, ask("reference"))
    assert plain["choices"][0]["logprobs"]["content"], plain
    assert plain["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    same(folded, plain, "direct stream vs direct plain")

    # plain -> plain
    want, _, _ = direct(m, ask("p2p"))
    assert post_json(u, ask("p2p"))[1]["x-sluice-cache"] == "miss"
    st, h, got, _ = post_json(u, ask("p2p"))
    assert st == 200 and h["x-sluice-cache"] == "hit"
    same(got, want, "plain -> plain hit")

    # plain -> stream
    _, want, want_ev = direct(m, ask("p2s"))
    assert post_json(u, ask("p2s"))[1]["x-sluice-cache"] == "miss"
    st, h, ev, _ = stream(u, ask("p2s", **so))
    assert st == 200 and h["x-sluice-cache"] == "hit"
    same(fold(ev), want, "plain -> stream hit")
    check_stream_chunks(ev, want_ev, "plain -> stream hit")

    # stream -> plain
    want, _, _ = direct(m, ask("s2p"))
    st, h, ev, _ = stream(u, ask("s2p", **so))
    assert st == 200 and h["x-sluice-cache"] == "miss"
    st, h, got, _ = post_json(u, ask("s2p"))
    assert st == 200 and h["x-sluice-cache"] == "hit"
    same(got, want, "stream -> plain hit")

    # stream -> stream
    _, want, want_ev = direct(m, ask("s2s"))
    assert stream(u, ask("s2s", **so))[1]["x-sluice-cache"] == "miss"
    st, h, ev, _ = stream(u, ask("s2s", **so))
    assert st == 200 and h["x-sluice-cache"] == "hit"
    same(fold(ev), want, "stream -> stream hit")
    check_stream_chunks(ev, want_ev, "stream -> stream hit")
    s.stop()
