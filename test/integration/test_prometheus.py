"""Issue 23: the alert rules and the Grafana dashboard against a real Prometheus
(Debian's /usr/bin/prometheus) scraping two real sluice instances under
traffic: every dashboard query returns data, and exactly the alerts the test
provokes (a provider failing: breaker open, its model without a provider,
the error rate; a budget nearly spent) have series, the others none.

Instance A keeps its state in a plain redis-server, instance B in a one-node
Redis Cluster (so the cluster panels have data) with the semantic cache on."""
import json, os, re, shutil, subprocess, tempfile, time, urllib.parse

import yaml

from harness import Mock, Redis, Sluice, base_config, chat, cluster_ports, free_port, post_json, request, wait_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROMETHEUS = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
ALERTS = os.path.join(ROOT, "conf/prometheus/alerts.yml")
DASHBOARD = os.path.join(ROOT, "conf/grafana/sluice.json")
PROVOKED = {"SluiceHighErrorRate", "SluiceBreakerOpen", "SluiceModelUnavailable", "SluiceBudgetNearlySpent"}
KEYS = [{"key": "sk-a", "tenant": "team-a"}, {"key": "sk-b", "tenant": "team-b"},
        {"key": "sk-budget", "tenant": "team-budget", "budget_usd": 0.05, "budget_period": "daily"}]


def auth(key):
    return {"Authorization": "Bearer " + key}


def config(good, flaky, redis, semantic=False):
    c = base_config(good, keys=KEYS, retries={"max": 0, "base_ms": 10},
                    breaker={"failures": 3, "cooldown_s": 120},
                    cache={"enabled": True, "ttl_s": 60})
    c["providers"] = [
        {"name": "good", "kind": "openai", "base_url": good.url + "/v1", "api_key": "sk-up",
         "models": ["gpt-4o-mini", "gpt-4o", "gpt-unpriced", "text-embedding-3-small"]},
        {"name": "flaky", "kind": "openai", "base_url": flaky.url + "/v1", "api_key": "sk-up",
         "models": ["gpt-fail"]}]
    c["prices"]["gpt-4o"] = {"input": 100, "output": 100}  # a budget spent in a few calls
    c["prices"]["text-embedding-3-small"] = {"input": 0.02, "output": 0}
    c["redis"] = redis
    if semantic:
        c["cache"]["semantic"] = {"enabled": True, "threshold": 0.95}
    return c


def one_node_cluster():
    # a cluster node also listens on port + 10000 (its bus): a free port above
    # 55535 would make redis-server refuse to start
    r = Redis(port=cluster_ports(1)[0], extra=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-announce-ip", "127.0.0.1"])
    r.cmd("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
    end = time.time() + 10
    while b"cluster_state:ok" not in r.cmd("CLUSTER", "INFO"):
        assert time.time() < end, "one-node cluster never became ok"
        time.sleep(0.05)
    return r


class Prometheus:
    """A real Prometheus in its own temp dir: 1 s scrapes and rule evaluations."""

    def __init__(self, targets, rules_text):
        self.dir = tempfile.mkdtemp(prefix="sluice-prom-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        with open(os.path.join(self.dir, "rules.yml"), "w") as f:
            f.write(rules_text)
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "rule_files: [rules.yml]\n"
                    "scrape_configs:\n"
                    "  - job_name: sluice\n"
                    "    static_configs: [{targets: [%s]}]\n" % ", ".join('"%s"' % t for t in targets))
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + os.path.join(self.dir, "prometheus.yml"),
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=self.log, cwd=self.dir)
        wait_port(self.port, 20)
        end = time.time() + 20
        while request("GET", self.url + "/-/ready")[0] != 200:
            assert time.time() < end, "prometheus never became ready"
            time.sleep(0.1)

    def api(self, path, **params):
        st, _, body = request("GET", self.url + path + "?" + urllib.parse.urlencode(params, doseq=True))
        j = json.loads(body)
        assert st == 200 and j["status"] == "success", (path, params, st, j)
        return j["data"]

    def query(self, expr):
        return self.api("/api/v1/query", query=expr)["result"]

    def wait(self, pred, what, timeout=20):
        end = time.time() + timeout
        while not pred():
            assert time.time() < end, "prometheus: never " + what
            time.sleep(0.25)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def traffic(s, key, n):
    """Misses and cache hits, a stream, an embedding, an unpriced model."""
    for i in range(n):
        st = post_json(s.url + "/v1/chat/completions", chat("question %d" % (i % 3)), auth(key))[0]
        assert st == 200, st
    st, _, body = request("POST", s.url + "/v1/chat/completions", chat("a stream", stream=True), auth(key))
    assert st == 200 and b"[DONE]" in body, (st, body[:200])
    assert post_json(s.url + "/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"},
                     auth(key))[0] == 200
    assert post_json(s.url + "/v1/chat/completions", chat("free", model="gpt-unpriced"), auth(key))[0] == 200


def budget_spent(s):
    m = re.search(r'^sluice_budget_spent_usd\{tenant="team-budget",period="daily"\} (\S+)$',
                  request("GET", s.url + "/metrics")[2].decode(), re.M)
    return float(m.group(1)) if m else 0.0


def spend_budget(s):
    """Distinct gpt-4o calls for team-budget until 90 % of its $0.05 is used (or
    refused): the gauge counts settled spend and in-flight reservations."""
    for i in range(60):
        st = post_json(s.url + "/v1/chat/completions", chat("spend %d" % i, model="gpt-4o", max_tokens=8),
                       auth("sk-budget"))[0]
        assert st in (200, 429), st
        if st == 429 or budget_spent(s) >= 0.045:
            time.sleep(0.2)  # settled
            assert budget_spent(s) >= 0.04, budget_spent(s)
            return
    raise AssertionError("the budget was never 80 %% spent (%s)" % budget_spent(s))


def fail_provider(s):
    """The failing provider, in two scrapes each (a counter Prometheus first
    sees at its final value has no rate): 5xx, then 503 from its open breaker."""
    for n in (1, 2, 1, 2):  # failures: 3 open the breaker
        for _ in range(n):
            st = post_json(s.url + "/v1/chat/completions", chat("fail", model="gpt-fail"), auth("sk-a"))[0]
            assert st >= 500, st
        time.sleep(1.3)


def dashboard_queries(instances, tenants):
    """Every target of every panel, with the template variables substituted as
    Grafana does for a multi-value selection (a regex alternation)."""
    d = json.load(open(DASHBOARD))
    assert d["schemaVersion"] >= 36 and d["title"] and d["uid"], d.get("schemaVersion")
    names = [v["name"] for v in d["templating"]["list"]]
    assert {"datasource", "instance", "tenant"} <= set(names), names
    out = []
    for p in d["panels"]:
        assert p["type"] == "row" or p["datasource"]["uid"] == "${datasource}", p["title"]
        for t in p.get("targets", []):
            e = (t["expr"].replace("$__rate_interval", "10s").replace("$instance", "|".join(instances))
                 .replace("$tenant", "|".join(tenants)))
            assert "$" not in e, e
            out.append((p["title"], e))
    return d, out


def alert_rules():
    """(name, expr) of every alert in alerts.yml, and the rules with every
    `for:` cut to 0s: a `for:` cannot elapse within a test, so Prometheus runs
    this copy and the test reads /api/v1/alerts besides evaluating each expr."""
    doc = yaml.safe_load(open(ALERTS))
    exprs = []
    for g in doc["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                exprs.append((r["alert"], r["expr"]))
                r["for"] = "0s"
    assert len(exprs) >= 11, exprs
    return exprs, yaml.safe_dump(doc)


def test_dashboard_and_alerts_against_a_real_prometheus():
    t0 = time.time()
    good, flaky = Mock(), Mock()
    flaky.config(status=500)
    redis, cluster = Redis(), one_node_cluster()
    a = Sluice(config(good, flaky, {"url": redis.url, "timeout_ms": 500}))
    b = Sluice(config(good, flaky, {"cluster": ["127.0.0.1:%d" % cluster.port], "timeout_ms": 500},
                      semantic=True))
    exprs, rules = alert_rules()
    targets = ["127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port]
    prom = Prometheus(targets, rules)
    try:
        prom.wait(lambda: len(prom.query('up{job="sluice"} == 1')) == 2, "scraped both instances")
        traffic(a, "sk-a", 12)
        traffic(b, "sk-b", 12)
        for text in ("What's the capital of France?", "what is france's capital"):  # a semantic hit on B
            assert post_json(b.url + "/v1/chat/completions", chat(text), auth("sk-b"))[0] == 200
        fail_provider(a)
        spend_budget(a)
        traffic(a, "sk-a", 3)  # after the failures too: rates over every window
        traffic(b, "sk-b", 3)
        # two more scrapes after the last request, and a rule evaluation on them
        prom.wait(lambda: prom.query('sum(sluice_breaker_state{provider="flaky"}) >= 1')
                  and prom.query('sum(sluice_cache_saved_usd_total{cache="semantic"}) > 0'),
                  "scraped the open breaker and the semantic hit")
        time.sleep(2.5)

        # the template variables' values (Grafana's label_values)
        inst = prom.api("/api/v1/label/instance/values", **{"match[]": "sluice_requests_total"})
        tenants = prom.api("/api/v1/label/tenant/values", **{"match[]": "sluice_requests_total"})
        assert set(targets) <= set(inst) and {"team-a", "team-b", "team-budget"} <= set(tenants), (inst, tenants)

        _, queries = dashboard_queries(targets, ["team-a", "team-b", "team-budget"])
        empty = [(title, e) for title, e in queries if not prom.query(e)]
        assert not empty, "dashboard queries without data:\n" + "\n".join("%s: %s" % x for x in empty)

        # Each alert's expression, evaluated now: series exactly for the provoked ones.
        got = {name: prom.query(e) for name, e in exprs}
        firing_exprs = {n for n, r in got.items() if r}
        assert firing_exprs == PROVOKED, ("expressions with series", firing_exprs, got,
                                          prom.query("sluice_budget_spent_usd"))
        assert {r["metric"]["instance"] for r in got["SluiceBreakerOpen"]} == {targets[0]}, got
        assert [r["metric"]["provider"] for r in got["SluiceBreakerOpen"]] == ["flaky"], got
        assert [r["metric"]["model"] for r in got["SluiceModelUnavailable"]] == ["gpt-fail"], got
        assert [r["metric"]["tenant"] for r in got["SluiceBudgetNearlySpent"]] == ["team-budget"], got
        # And the rules as Prometheus runs them (the copy with for: 0s): firing alerts.
        def firing():
            return {al["labels"]["alertname"] for al in prom.api("/api/v1/alerts")["alerts"]
                    if al["state"] == "firing"}
        prom.wait(lambda: firing() == PROVOKED, "fired exactly the provoked alerts (%s)" % firing(), 10)
        rules_state = prom.api("/api/v1/rules")["groups"]
        assert all(r["health"] == "ok" for g in rules_state for r in g["rules"]), rules_state
    finally:
        prom.stop()
    a.stop()
    b.stop()
    assert time.time() - t0 < 60, "took %.1fs" % (time.time() - t0)


# ---- promtool: the rules are valid and their unit tests pass (make test runs these) ----

def promtool(*args):
    tool = shutil.which("promtool")
    assert tool, "promtool is missing (third_party/packages.txt installs prometheus)"
    r = subprocess.run([tool] + list(args), capture_output=True, cwd=os.path.dirname(ALERTS), timeout=60)
    assert r.returncode == 0, (args, r.stdout.decode()[-3000:], r.stderr.decode()[-3000:])
    return r.stdout.decode()


def test_promtool_check_rules():
    assert "SUCCESS" in promtool("check", "rules", "alerts.yml")


def test_promtool_test_rules_cover_every_alert():
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")
    tests = yaml.safe_load(open(os.path.join(os.path.dirname(ALERTS), "alerts_test.yml")))
    fired = {a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", []) if a.get("exp_alerts")}
    names = {n for n, _ in alert_rules()[0]}
    assert fired == names, ("alerts without a firing unit test", names - fired)


def metric(s, pattern):
    """The value of the one /metrics line matching pattern (a regex for name and labels)."""
    body = request("GET", s.url + "/metrics")[2].decode()
    m = re.search(r"^%s (\S+)$" % pattern, body, re.M)
    assert m, (pattern, body[-3000:])
    return float(m.group(1))


def test_sla_alert_and_delivery_counters():
    from test_sla import Hook, ingest, sla_conf, ticket
    hook, m = Hook(always_fail=True), Mock()
    c = sla_conf(m, None, hook)
    c["sla"]["retry"] = {"max": 1, "base_ms": 50}
    s = Sluice(c)
    assert metric(s, r'sluice_sla_alerts_total\{sla="response",state="breached"\}') == 0  # there from the start
    assert metric(s, r'sluice_sla_alert_deliveries_total\{result="dead_lettered"\}') == 0
    ingest(s, [ticket("late", 90)])  # response target 60 min: breached
    end = time.time() + 6
    while metric(s, r'sluice_sla_alert_deliveries_total\{result="dead_lettered"\}') < 1:
        assert time.time() < end, "never dead-lettered"
        time.sleep(0.1)
    assert metric(s, r'sluice_sla_alerts_total\{sla="response",state="breached"\}') == 1
    assert metric(s, r'sluice_sla_alert_deliveries_total\{result="retried"\}') == 1
    assert metric(s, r'sluice_sla_alert_deliveries_total\{result="delivered"\}') == 0
    assert hook.calls == 2
    s.stop()
    hook.close()


def test_worker_restart_is_counted_and_start_time_moves():
    m = Mock()
    s = Sluice(base_config(m, workers=2))
    first = metric(s, "sluice_start_time_seconds")
    assert metric(s, "sluice_worker_restarts_total") == 0
    assert abs(first - time.time()) < 30, first
    pid = json.loads(request("GET", s.url + "/health")[2])["pid"]
    time.sleep(1.1)  # so that the new worker's start is a later second
    os.kill(pid, 9)
    end = time.time() + 10
    while True:
        try:
            if metric(s, "sluice_worker_restarts_total") == 1:
                break
        except (AssertionError, OSError):
            pass  # the dead worker's connection, or a scrape before the first publish
        assert time.time() < end, "the restart was never counted"
        time.sleep(0.1)
    end = time.time() + 5
    while metric(s, "sluice_start_time_seconds") <= first:  # the group reports its latest start
        assert time.time() < end, "start time never moved"
        time.sleep(0.1)
    s.stop()
