"""Issue 8: triage on the LLM pipeline."""
import json, os, shutil, signal, tempfile, threading, time
from harness import ROOT, Mock, Sluice, base_config, post_json, post_status_or_closed

KB = os.path.join(ROOT, "conf", "kb")


def conf(m, **over):
    return base_config(m, cache={"enabled": True}, retries={"max": 0, "base_ms": 1},
                       triage={"model": "gpt-4o-mini", "kb": KB, "top_k": 2}, **over)


def classify(s, content, tid="T-1"):
    return post_json(s.url + "/triage/classify", {"ticket_id": tid, "subject": "help", "content": content})


def test_classification_parsed_then_cached():
    m = Mock()
    s = Sluice(conf(m))
    good = 'MOCK_REPLY:{"product":"billing","urgency":"high","confidence":1.7,"reasoning":"double charge"}'
    st, _, j, _ = classify(s, good)
    assert st == 200 and j["product"] == "billing" and j["urgency"] == "high", j
    assert j["confidence"] == 1 and j["fallback"] is False and j["cached"] is False and j["cost_usd"] > 0, j
    sent = json.loads(m.last()["body"])
    assert sent["response_format"] == {"type": "json_object"} and "billing" in sent["messages"][0]["content"]
    st, _, j2, _ = classify(s, good)
    assert j2["cached"] is True and j2["cost_usd"] == 0 and j2["product"] == "billing", j2
    assert m.stats()["requests"] == 1
    log = s.wait_log(4)
    assert any(l["path"] == "/triage/classify" for l in log) and any(l["request_id"].endswith("-llm") for l in log)
    s.stop()


def test_fallbacks():
    m = Mock()
    s = Sluice(conf(m))
    for content in ("just some prose, no json", 'MOCK_REPLY:{"product":"spaceships","urgency":"high","confidence":0.9}',
                    'MOCK_REPLY:{"product":"billing","urgency":"whenever","confidence":0.9}',
                    'MOCK_REPLY:{"product":"billing","urgency":"low"}'):
        st, _, j, _ = classify(s, content, tid=content[:20])
        assert st == 200 and j["fallback"] is True and j["product"] == "general" and j["urgency"] == "medium", j
        assert j["confidence"] == 0 and j["reasoning"]
    m.config(status=500)
    st, _, j, _ = classify(s, "provider down")
    assert st == 200 and j["fallback"] is True, j
    s.stop()


def test_respond_grounded_in_kb():
    m = Mock()
    s = Sluice(conf(m))
    st, _, j, _ = post_json(s.url + "/triage/respond",
                            {"ticket_id": "T-9", "subject": "refund for a duplicate charge",
                             "content": "I was charged twice on my invoice, I want a refund"})
    assert st == 200 and j["fallback"] is False and j["answer"], j
    titles = [x["title"] for x in j["sources"]]
    assert titles[0] == "Refunds and billing disputes", titles
    assert all(x["score"] > 0 and x["path"] for x in j["sources"])
    prompt = json.loads(m.last()["body"])["messages"][1]["content"]
    assert "Refunds reach the original payment" in prompt and "Single sign-on users" not in prompt
    m.config(status=503)
    st, _, j, _ = post_json(s.url + "/triage/respond", {"ticket_id": "T-10", "subject": "password reset",
                                                        "content": "cannot reset my password, account locked"})
    assert st == 200 and j["fallback"] is True and "follow up" in j["answer"] and j["sources"], j
    s.stop()


def test_triage_input_errors():
    m = Mock()
    s = Sluice(conf(m, keys=[{"key": "sk-t", "tenant": "support"}]))
    h = {"Authorization": "Bearer sk-t"}
    assert post_json(s.url + "/triage/classify", {"ticket_id": "x", "subject": "s", "content": "c"})[0] == 401
    st, _, j, _ = post_json(s.url + "/triage/classify", {"ticket_id": "x", "subject": "s"}, h)
    assert st == 400 and j["error"]["param"] == "content", j
    assert post_json(s.url + "/triage/classify", "{broken", h)[0] == 400
    big = {"ticket_id": "x", "subject": "s", "content": "a" * 40000}
    assert post_status_or_closed(s.url + "/triage/respond", big, h) == 413
    assert m.stats()["requests"] == 0
    s.stop()


def test_respond_survives_kb_reload_mid_call():
    """Issue 17 item 3: a SIGHUP that swaps the knowledge base while a respond
    waits on the LLM must not free what the answer still names (ASan build)."""
    old, new = tempfile.mkdtemp(prefix="kb-old-"), tempfile.mkdtemp(prefix="kb-new-")
    for f in os.listdir(KB):
        shutil.copy(os.path.join(KB, f), old)
    with open(os.path.join(new, "other.md"), "w") as f:
        f.write("# Something else entirely\n\nNothing about refunds here.\n")
    m = Mock()
    c = base_config(m, cache={"enabled": False}, retries={"max": 0, "base_ms": 1},
                    triage={"model": "gpt-4o-mini", "kb": old, "top_k": 2})
    s = Sluice(c)
    m.config(delay_ms=1200)
    out = {}

    def call():
        out["r"] = post_json(s.url + "/triage/respond",
                             {"ticket_id": "T-R", "subject": "refund for a duplicate charge",
                              "content": "I was charged twice on my invoice, I want a refund"})

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.4)
    c["triage"]["kb"] = new
    s.write_config(c)
    shutil.rmtree(old)
    s.signal(signal.SIGHUP)
    t.join(10)
    st, _, j, _ = out["r"]
    assert st == 200 and j["fallback"] is False and j["answer"], j
    assert j["sources"][0]["title"] == "Refunds and billing disputes", j
    assert j["sources"][0]["path"] == os.path.join(old, "billing-refunds.md"), j
    assert "reloaded" in s.stderr()
    m.config(delay_ms=0)
    st, _, j, _ = post_json(s.url + "/triage/respond", {"ticket_id": "T-S", "subject": "something else",
                                                        "content": "something else entirely"})
    assert st == 200 and j["sources"][0]["title"] == "Something else entirely", j
    s.stop()
    shutil.rmtree(new)
