"""Issue 7: SLA tracking of tickets, with real Redis and a local webhook."""
import datetime, http.server, json, threading, time, urllib.parse
from harness import Mock, Redis, Sluice, base_config, free_port, post_json, request

TARGETS = {"enterprise": {"critical": {"response": 60, "resolution": 240},
                          "high": {"response": 120, "resolution": 480}},
           "standard": {"low": {"response": 600, "resolution": 1440}}}


def iso(minutes_ago):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ticket(tid, created_ago, prio="critical", tier="enterprise", status="open", updated_ago=None, **kw):
    t = {"id": tid, "subject": "s " + tid, "priority": prio, "customer_tier": tier, "status": status,
         "created_at": iso(created_ago), "updated_at": iso(updated_ago if updated_ago is not None else created_ago)}
    t.update(kw)
    return t


class Hook:
    """A Slack-like webhook receiver that can fail its first N deliveries."""
    def __init__(self, fail_first=0, always_fail=False):
        self.got, self.fail_first, self.always_fail = [], fail_first, always_fail
        self.calls = 0
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.calls += 1
                if hook.always_fail or hook.calls <= hook.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                hook.got.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass
        self.port = free_port()
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/hook" % self.port

    def close(self):
        self.srv.shutdown()


def sla_conf(m, redis=None, hook=None, **over):
    sla = {"evaluate_every_s": 1, "at_risk_ratio": 0.25, "targets": TARGETS, "retry": {"max": 3, "base_ms": 100},
           "max_batch": 50}
    if hook:
        sla["webhook"] = hook.url
    c = base_config(m, sla=sla, **over)
    if redis:
        c["redis"] = {"url": redis.url}
    return c


def ingest(s, tickets):
    return post_json(s.url + "/sla/tickets", {"tickets": tickets})


def get(s, tid):
    st, _, body = request("GET", s.url + "/sla/tickets/" + urllib.parse.quote(tid, safe=""))
    return st, json.loads(body)


def _modes():
    m = Mock()
    yield "embedded", m, None
    yield "redis", m, Redis()


def test_ingest_counts_idempotent_and_validation():
    for mode, m, r in _modes():
        s = Sluice(sla_conf(m, r))
        time.sleep(0.3)
        batch = [ticket("A-1", 10), ticket("A-2", 10), {"id": "bad", "priority": "urgent"}]
        st, _, j, _ = ingest(s, batch)
        assert st == 200 and (j["created"], j["failed"]) == (2, 1), (mode, j)
        assert j["errors"][0]["id"] == "bad" and j["errors"][0]["error"]
        st, _, j, _ = ingest(s, batch[:2])
        assert (j["created"], j["updated"], j["skipped"]) == (0, 0, 2), (mode, j)
        newer = ticket("A-1", 10, updated_ago=1, first_response_at=iso(5))
        older = ticket("A-2", 10, updated_ago=20)
        st, _, j, _ = ingest(s, [newer, older])
        assert (j["updated"], j["skipped"]) == (1, 1), (mode, j)
        assert get(s, "A-1")[1]["response"]["state"] == "met"
        assert post_json(s.url + "/sla/tickets", "{nope")[0] == 400
        assert post_json(s.url + "/sla/tickets", {"tickets": "x"})[0] == 400
        assert ingest(s, [ticket("x%d" % i, 1) for i in range(51)])[0] == 413
        assert get(s, "nope")[0] == 404
        s.stop()


def test_states_and_ratios_and_exact_ids():
    m, r = Mock(), Redis()
    s = Sluice(sla_conf(m, r))
    time.sleep(0.3)
    weird = "we:ird *id %s\r\nx"
    ingest(s, [ticket("on", 10), ticket("risk", 50), ticket("late", 90), ticket(weird, 10, tier="unknown-tier"),
               ticket("done", 100, first_response_at=iso(70), status="resolved", resolved_at=iso(60))])
    st, j = get(s, "on")
    assert j["response"]["state"] == "on_track" and abs(j["response"]["remaining_ratio"] - 50 / 60) < 0.02, j
    assert get(s, "risk")[1]["response"]["state"] == "at_risk"
    late = get(s, "late")[1]
    assert late["response"]["state"] == "breached" and late["response"]["remaining_s"] < 0
    assert late["resolution"]["state"] == "on_track"
    done = get(s, "done")[1]
    assert done["response"]["state"] == "met" and done["resolution"]["state"] == "met", done
    st, j = get(s, weird)
    assert st == 200 and j["id"] == weird and j["response"]["state"] == "no_target", j
    st, _, body = request("GET", s.url + "/sla/dashboard")
    d = json.loads(body)
    assert d["total"] == 5 and d["by_state"]["breached"] == 1 and d["by_state"]["at_risk"] == 1, d
    assert [t["id"] for t in d["at_risk"]] == ["risk"] and [t["id"] for t in d["breached"]] == ["late"]
    st, _, body = request("GET", s.url + "/sla/dashboard?customer_tier=standard")
    assert json.loads(body)["total"] == 0
    st, _, body = request("GET", s.url + "/sla/dashboard?priority=critical&customer_tier=enterprise")
    assert json.loads(body)["total"] == 4
    s.stop()
    s2 = Sluice(sla_conf(m, r))  # tickets outlive a restart
    time.sleep(0.3)
    assert get(s2, "risk")[0] == 200
    s2.stop()


def test_alerts_once_across_ticks_instances_and_restart():
    m, r, hook = Mock(), Redis(), Hook()
    a, b = Sluice(sla_conf(m, r, hook)), Sluice(sla_conf(m, r, hook))
    time.sleep(0.3)
    ingest(a, [ticket("alert-risk", 50), ticket("alert-late", 90), ticket("quiet", 1)])
    time.sleep(3.5)
    kinds = sorted((g["ticket_id"], g["sla"], g["state"]) for g in hook.got)
    assert kinds == [("alert-late", "response", "breached"), ("alert-risk", "response", "at_risk")], kinds
    assert "text" in hook.got[0] and hook.got[0]["priority"] == "critical"
    a.stop(), b.stop()
    c = Sluice(sla_conf(m, r, hook))
    time.sleep(2.5)
    assert len(hook.got) == 2, hook.got
    c.stop()
    hook.close()


def test_webhook_retries_then_dead_letter():
    m = Mock()
    hook = Hook(fail_first=2)
    s = Sluice(sla_conf(m, None, hook))
    ingest(s, [ticket("retry-me", 90)])
    time.sleep(3)
    assert hook.calls == 3 and len(hook.got) == 1, (hook.calls, hook.got)
    s.stop()
    hook.close()
    dead = Hook(always_fail=True)
    r = Redis()
    s = Sluice(sla_conf(m, r, dead))
    time.sleep(0.3)
    ingest(s, [ticket("doomed", 90)])
    time.sleep(3.5)
    st, _, body = request("GET", s.url + "/sla/alerts/dead")
    j = json.loads(body)
    assert st == 200 and j["dead"] and j["dead"][0]["ticket_id"] == "doomed", j
    assert dead.calls == 4  # one try and three retries
    s.stop()
    dead.close()


def test_redis_down_means_503_never_200():
    m, r = Mock(), Redis()
    s = Sluice(sla_conf(m, r))
    time.sleep(0.3)
    r.kill()
    time.sleep(0.2)
    st, _, j, _ = ingest(s, [ticket("lost?", 1)])
    assert st == 503 and "error" in j, (st, j)
    s.stop()
