"""Issue 16: SDK tests for what sluice does NOT do yet. They are written and
ready, but not collected by run.py (their names start with `pending_`, not
`test_`): the engineer who builds a feature renames its tests to `test_...`
(and they must then pass). Run them by hand, all or by substring:

    python3 test/integration/test_sdk_pending.py [substring ...]

Each feature's tests say which part of the issue they cover. The mock already
speaks every route used here (test_mock.py checks it directly)."""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_sdk as base  # a module object only: no test_ names land here
from harness import post_json, request

CLIENT_KEY = base.CLIENT_KEY


# ---- 1. the Responses API: now real tests, in test_sdk_responses.py ----------------


# ---- 2. every other OpenAI route: collected in test_sdk_passthrough.py ------------


# ---- 3. Anthropic as Anthropic's clients expect it -----------------------------

def pending_anthropic_count_tokens():
    st = base.Stack()
    r = st.anthropic("count_tokens")
    assert r["input_tokens"] == r["usage_input"] and r["input_tokens"] > 0, r
    assert st.an.stats()["by_path"]["/v1/messages/count_tokens"] == 1
    # a model an openai-kind provider serves: an estimate, marked as one
    stt, h, j, _ = post_json(st.s.url + "/v1/messages/count_tokens",
                             {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "estimate me"}]},
                             {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"})
    assert stt == 200 and j["input_tokens"] > 0 and h.get("x-sluice-estimated") == "true", (stt, h, j)
    st.stop()


def pending_anthropic_models_list():
    st = base.Stack()
    r = st.anthropic("models")
    ids = [m["id"] for m in r["models"]]
    assert "claude-3-5-haiku" in ids and "claude-sonnet-4-5" in ids, r  # asked at {base_url}/v1/models
    assert len(ids) == len(set(ids)), r
    # the mock answers Anthropic's shape only to anthropic-version: that is how sluice asked
    assert st.an.stats()["by_path"]["/v1/models"] == 1, st.an.stats()
    assert all(m["type"] == "model" for m in r["models"]), r
    st.stop()


def pending_anthropic_beta_and_version_forwarded():
    st = base.Stack()
    st.anthropic("headers", env={"SLUICE_BETA": "token-efficient-tools-2025-02-19"})
    h = st.an.last()["headers"]
    assert h["anthropic-beta"] == "token-efficient-tools-2025-02-19", h
    assert h["anthropic-version"] == "2023-06-01" and h["x-api-key"] == "sk-anthropic-upstream", h
    st.stop()


def pending_anthropic_errors_are_anthropic_shaped():
    st = base.Stack()
    r = st.anthropic("auth_error", key="sk-wrong")
    assert r["auth"] is True and r["error_type"] == "authentication_error", r
    stt, h, j, _ = post_json(st.s.url + "/v1/messages", {"model": "claude-3-5-haiku", "max_tokens": 5,
                                                         "messages": [{"role": "user", "content": "x"}]},
                             {"x-api-key": CLIENT_KEY})
    assert "request-id" in h and "x-request-id" in h, h
    st.stop()


# ---- 5. money: prompt-cache usage ----------------------------------------------

def pending_anthropic_cache_usage_metered():
    st = base.Stack()
    r = st.anthropic("cache_usage")
    assert r["first"]["cache_creation_input_tokens"] > 0 and r["second"]["cache_read_input_tokens"] > 0, r
    log = st.s.wait_log(2)
    assert log[-2]["cache_write_tokens"] == r["first"]["cache_creation_input_tokens"], log[-2]
    assert log[-1]["cached_tokens"] == r["second"]["cache_read_input_tokens"], log[-1]
    st.stop()


def pending_openai_cached_tokens_in_access_log():
    st = base.Stack()
    st.oa.config(cached_tokens=64, reasoning_tokens=5)
    r = st.openai("chat")
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] == 64, r
    log = st.s.wait_log(1)[-1]
    assert log["cached_tokens"] == 64 and log["reasoning_tokens"] == 5, log
    st.stop()


if __name__ == "__main__":
    import run
    wanted = sys.argv[1:]
    failed = 0
    for name in sorted(n for n in dir() if n.startswith("pending_")):
        if wanted and not any(w in name for w in wanted):
            continue
        err, tb = run.run_one(globals()[name])
        print(("PASS %s" % name) if err is None else ("FAIL %s: %s\n%s" % (name, err, tb)), flush=True)
        failed += err is not None
    sys.exit(1 if failed else 0)
