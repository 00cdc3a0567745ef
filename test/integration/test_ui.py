"""Issue 12: /stats and the /ui page, rendered by a real headless Chromium."""
import json, os, re, shutil, subprocess, tempfile
from harness import ROOT, Mock, Sluice, base_config, chat, post_json, request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def traffic(s, m_bad):
    u = s.url + "/v1/chat/completions"
    for tenant_key in ("sk-alpha", "sk-beta"):
        for i in range(3):
            post_json(u, chat("dash %d" % i), {"Authorization": "Bearer " + tenant_key})
            post_json(u, chat("dash %d" % i), {"Authorization": "Bearer " + tenant_key})  # a hit
    post_json(u, chat("to the broken one", model="broken-model"), {"Authorization": "Bearer sk-alpha"})


def conf(m, bad, **over):
    over.setdefault("keys", [{"key": "sk-alpha", "tenant": "alpha"}, {"key": "sk-beta", "tenant": "beta"}])
    c = base_config(m, cache={"enabled": True}, retries={"max": 0, "base_ms": 1}, breaker={"failures": 1, "cooldown_s": 60},
                    **over)
    c["providers"] = [{"name": "broken", "kind": "openai", "base_url": bad.url + "/v1", "api_key": "x", "models": ["broken-*"]},
                      {"name": "main", "kind": "openai", "base_url": m.url + "/v1", "api_key": "y", "models": ["*"]}]
    return c


def test_stats_json_and_admin_key():
    m, bad = Mock(), Mock()
    bad.config(status=500)
    s = Sluice(conf(m, bad, admin={"key": "sk-admin"}))
    traffic(s, bad)
    assert request("GET", s.url + "/stats")[0] == 401
    assert request("GET", s.url + "/stats", headers={"Authorization": "Bearer sk-alpha"})[0] == 401
    st, _, body = request("GET", s.url + "/stats", headers={"Authorization": "Bearer sk-admin"})
    j = json.loads(body)
    assert st == 200 and len(j["series"]) == 90, j.keys()
    assert {t["name"] for t in j["tenants"]} == {"alpha", "beta"}
    assert j["totals"]["cost_usd"] > 0 and j["totals"]["saved_usd"] > 0 and j["totals"]["cache_hits"] == 6
    assert {p["name"]: p["breaker"] for p in j["providers"]} == {"broken": "open", "main": "closed"}
    assert any(e["status"] == 500 and e["route"] == "/v1/chat/completions" for e in j["errors"]), j["errors"]
    assert "sk-alpha" not in body.decode() and "sk-admin" not in body.decode()
    assert j["latency"]["p50_ms"] is not None
    assert request("GET", s.url + "/ui")[0] == 200  # the page itself is static; its data needs the key
    s.stop()


def test_page_renders_in_chromium():
    assert CHROMIUM, "chromium is missing (third_party/packages.txt installs it)"
    m, bad = Mock(), Mock()
    bad.config(status=500)
    s = Sluice(conf(m, bad, admin={"key": "sk-admin"}))
    traffic(s, bad)
    profile = tempfile.mkdtemp(prefix="sluice-chromium-")
    shot = os.path.join(ROOT, "build", "ui.png")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--user-data-dir=" + profile, "--virtual-time-budget=4000", "--window-size=1280,1000"]
    page = s.url + "/ui#key=sk-admin"  # the page takes the admin key from the fragment once
    dom = subprocess.run(flags + ["--dump-dom", page], capture_output=True, text=True, timeout=60).stdout
    subprocess.run(flags + ["--screenshot=" + shot, page], capture_output=True, timeout=60)
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "alpha" in text and "beta" in text, text[:2000]
    assert re.search(r"\$0\.0000\d*[1-9]", text), "no non-zero cost on the page"
    assert re.search(r"\d+\.\d% hits", text) and "0.0% hits" not in text, "no hit ratio"
    assert "open" in text and "closed" in text, "breaker states missing"
    assert os.path.exists(shot) and os.path.getsize(shot) > 10000
    s.stop()


def test_stats_cover_every_worker():
    m = Mock()
    c = base_config(m, workers=2, cache={"enabled": False})
    s = Sluice(c)
    import time
    time.sleep(0.5)
    for i in range(30):  # new connections: the kernel spreads them over both workers
        post_json(s.url + "/v1/chat/completions", chat("w%d" % i))
    seen, totals = set(), set()
    for i in range(24):  # with 24 new connections both workers answer (odds of not: 2^-23)
        j = json.loads(request("GET", s.url + "/stats")[2])
        seen.add(j["worker"])
        totals.add(j["totals"]["requests"])
    assert seen == {0, 1}, seen
    assert totals == {30}, totals  # whichever worker answers, the whole group's count
    s.stop()
