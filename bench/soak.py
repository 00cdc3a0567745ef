#!/usr/bin/env python3
"""The soak (issue #10; in bench/, not `make test`).

A million mixed requests against one sluice with a real Redis and the mock
provider: cache hits, misses (some no-store / no-cache / short TTL), streams,
Anthropic translation, client errors (400, 401, 404, 429), upstream errors
(the mock's fail_next knob, a dead provider whose breaker opens and closes)
and client aborts (a thread that leaves streaming requests at every stage).

Pass: sluice RSS grows < 1 % from the warm-up point (10 % of the requests) to
the end, its open file descriptors are flat (+-2), every Redis key but the SLA
tickets' has a TTL, and sluice is alive and answers /health.

    python3 bench/soak.py                       # 1,000,000 requests, a few minutes
    SOAK_REQUESTS=50000 python3 bench/soak.py   # a short one

Environment: SOAK_REQUESTS (1000000), SOAK_CONNECTIONS (64), SOAK_TIMEOUT
(watchdog seconds, default scaled from SOAK_REQUESTS), SOAK_RESULTS (file the
markdown block is appended to; default bench/results.md, "-" for none),
SOAK_KEEP=1 keeps the temporary directory (configs, sluice's stderr),
SLUICE_BIN / MOCK_BIN run other binaries than build/ (SOAK_COMMIT then names
their commit in the heading).
Stdlib only; every process started here is killed at the end, also on errors,
SIGINT, SIGTERM and the watchdog."""
import datetime, json, os, re, resource, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_port, rss_kib  # noqa: E402  (the table's runner, same folder)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "integration"))
import resp  # noqa: E402  (the Redis protocol, shared with the tests)

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
N = int(os.environ.get("SOAK_REQUESTS", "1000000"))
CONNS = int(os.environ.get("SOAK_CONNECTIONS", "64"))
TIMEOUT = int(os.environ.get("SOAK_TIMEOUT", str(max(600, N // 500 + 300))))
RESULTS = os.environ.get("SOAK_RESULTS", os.path.join(ROOT, "bench", "results.md"))
KEEP = os.environ.get("SOAK_KEEP") == "1"
WARM_SHARE = 0.10        # the warm-up point: after this share of the requests,
WARM_MIN = 40000         # and at least this many (caches and allocator settle), at most half
SETTLE_S = 12.0          # quiet time before each measurement: sluice gives freed memory back every 10 s when idle
WARM_AT = min(max(N * WARM_SHARE, WARM_MIN), N / 2)
RSS_MAX_GROWTH = 0.01    # < 1 %
FD_SLACK = 2
POOL_MAX = CONNS + 16    # idle upstream connections: at most the load's concurrency
ABORTS = max(2000, N // 200)  # client aborts spread over the run
FAULT_EVERY_S = 0.25     # the mock fails its next FAULT_BURST calls every 0.25 s: with
FAULT_BURST = 16         # one retry, some reach the client as 500s
# SLA ticket state lives without a TTL by design (src/services/sla.c: K_TICKET,
# K_RISK, K_DUE, K_IDS, K_DEAD); alert claims (sluice:{sla}:alert:*) expire.
TICKET_KEYS = re.compile(rb"^sluice:\{sla\}:(t:.*|risk|due|ids|dead)$", re.S)

procs = []
tmpdir = None


class Watchdog(Exception):
    pass


def log(msg):
    sys.stderr.write("soak: %s\n" % msg)
    sys.stderr.flush()


def cleanup():
    for p in procs:
        try:
            if p.poll() is None:
                p.kill()
        except Exception:
            pass
    for p in procs:
        try:
            p.wait(5)
        except Exception:
            pass
    del procs[:]
    if tmpdir and not KEEP:
        shutil.rmtree(tmpdir, ignore_errors=True)


def on_signal(sig, frame):
    raise KeyboardInterrupt("signal %d" % sig)


def on_alarm(sig, frame):
    raise Watchdog("watchdog: the soak took more than %d s" % TIMEOUT)


# ---- processes --------------------------------------------------------------------------

def wait_port(port, proc, what, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit("soak: %s exited (%s) before opening port %d" % (what, proc.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("soak: %s never opened port %d" % (what, port))


def spawn(cmd, name, **kw):
    out = open(os.path.join(tmpdir, name + ".log"), "wb")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    out.close()
    procs.append(p)
    return p


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def binaries():
    sl = os.environ.get("SLUICE_BIN") or os.path.join(ROOT, "build/sluice")
    mock = os.environ.get("MOCK_BIN") or os.path.join(ROOT, "build/sluice-mock")
    if not (os.access(sl, os.X_OK) and os.access(mock, os.X_OK)):
        log("building (make -s -j2)")
        subprocess.run(["make", "-s", "-j2"], cwd=ROOT, check=True)
    # copies: a rebuild during the soak must not change what runs
    out = []
    for b in (sl, mock):
        dst = os.path.join(tmpdir, os.path.basename(b))
        shutil.copy2(b, dst)
        out.append(dst)
    return out


def need(tool, hint):
    if not shutil.which(tool):
        raise SystemExit("soak: %s not found (%s)" % (tool, hint))


SLA_TARGETS = """\
  targets:
    enterprise:
      critical: { response: 15, resolution: 240 }
      high: { response: 60, resolution: 480 }
      medium: { response: 240, resolution: 1440 }
      low: { response: 480, resolution: 2880 }
    standard:
      critical: { response: 60, resolution: 480 }
      high: { response: 240, resolution: 1440 }
      medium: { response: 480, resolution: 2880 }
      low: { response: 1440, resolution: 5760 }
"""


def sluice_config(port, mock_port, redis_port, dead_port):
    return ("listen: 127.0.0.1:%d\n" % port +
            "log: { access: \"off\" }\n"
            "redis: { url: \"redis://127.0.0.1:%d/0\", timeout_ms: 200 }\n" % redis_port +
            "providers:\n"
            "  - { name: dead, kind: openai, base_url: \"http://127.0.0.1:%d/v1\", api_key: sk-dead,"
            " models: [\"gpt-dead\"], breaker: { failures: 3, cooldown_s: 1 } }\n" % dead_port +
            "  - { name: mock, kind: openai, base_url: \"http://127.0.0.1:%d/v1\", api_key: sk-soak-upstream,"
            " models: [\"gpt-4o-mini\"] }\n" % mock_port +
            "cache: { enabled: true, ttl_s: 120, l1_max_bytes: 1MiB }\n"
            "coalesce: { enabled: true }\n"
            "keys:\n"
            "  - { key: sk-soak-a, tenant: soak-a, rpm: 10000000 }\n"
            "  - { key: sk-soak-b, tenant: soak-b, tpm: 1000000000, budget_usd: 1000000, budget_period: daily }\n"
            "  - { key: sk-soak-tight, tenant: soak-tight, rpm: 60 }\n"
            "prices: { gpt-4o-mini: { input: 0.15, output: 0.60 } }\n"
            "retries: { max: 1, base_ms: 5 }\n"
            "timeouts: { connect_ms: 500, first_byte_ms: 10000, total_ms: 30000, idle_ms: 10000 }\n"
            "breaker: { failures: 100, cooldown_s: 1 }\n"
            "server: { max_inflight: 100000 }\n"
            "shutdown: { drain_s: 2 }\n"
            "sla:\n  evaluate_every_s: 5\n" + SLA_TARGETS)


# ---- HTTP and Redis helpers -------------------------------------------------------------

def http(method, url, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class RedisConn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.s.makefile("rb")

    def send(self, *cmds):
        self.s.sendall(b"".join(resp.encode(*args) for args in cmds))
        return [resp.read(self.f) for _ in cmds]

    def close(self):
        self.f.close()
        self.s.close()


def redis_ttl_audit(port):
    """SCAN every key (what `redis-cli --scan` does), TTL each (pipelined).
    -> (total keys, ticket keys, [keys without a TTL], {prefix: count})"""
    c = RedisConn(port)
    cursor, total, tickets, bad, kinds = b"0", 0, 0, [], {}
    while True:
        cursor, keys = c.send(("SCAN", cursor, "COUNT", "2000"))[0]
        ttls = c.send(*[("TTL", k) for k in keys]) if keys else []
        for k, ttl in zip(keys, ttls):
            total += 1
            kind = re.sub(rb"[0-9a-f]{16,}", b"HEX", k)
            kind = re.sub(rb"^(sluice:\{sla\}:t:|sluice:\{sla\}:alert:).*", rb"\1*", kind).decode(errors="replace")
            kinds[kind] = kinds.get(kind, 0) + 1
            if TICKET_KEYS.match(k):
                tickets += 1
            elif ttl == -1:
                bad.append(k)
        if cursor == b"0":
            break
    c.close()
    return total, tickets, bad, kinds


def measure(pid, ports):
    return {"rss": rss_kib(pid), "fds": fds(pid), "fd_kinds": fd_kinds(pid, ports)}


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def tcp_sockets():
    """socket inode -> (local port, remote port, state) for every TCP socket."""
    out = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    p = line.split()
                    out[p[9]] = (int(p[1].rsplit(":", 1)[1], 16), int(p[2].rsplit(":", 1)[1], 16), p[3])
        except OSError:
            pass
    return out


def fd_kinds(pid, ports):
    """Open fds of pid by kind: sockets by peer (ports: {port: name}), the rest by target."""
    kinds, tcp = {}, tcp_sockets()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", t)
        if m:
            loc, rem, state = tcp.get(m.group(1), (0, 0, ""))
            if state == "0A":
                t = "listen"
            elif loc in ports:
                t = "from " + ports[loc]
            elif rem in ports:
                t = "to " + ports[rem]
            else:
                t = "other socket"
        elif t.startswith("/"):
            t = "file"
        else:
            t = re.sub(r"\[\d+\]", "", t)
        kinds[t] = kinds.get(t, 0) + 1
    return kinds


# ---- background load: aborts and upstream faults -----------------------------------------

class Background:
    """Threads that run only while `on` is set: client aborts and fault bursts."""

    def __init__(self, sluice_port, mock_url):
        self.port, self.mock_url = sluice_port, mock_url
        self.on = threading.Event()
        self.stop = threading.Event()
        self.idle = [threading.Event(), threading.Event()]
        self.abort_interval = 0.02
        self.aborts = {"after_send": 0, "half_body": 0, "after_head": 0, "mid_stream": 0, "mid_stream_rst": 0,
                       "error_answer": 0}
        self.abort_errors = 0
        self.abort_error_kinds = {}
        self.faults = 0
        self.threads = [threading.Thread(target=self.aborter, daemon=True),
                        threading.Thread(target=self.faulter, daemon=True)]
        for t in self.threads:
            t.start()

    def total_aborts(self):
        return sum(v for k, v in self.aborts.items() if k != "error_answer")

    def gate(self, i):
        """Blocks while paused; False when stopping."""
        if not self.on.is_set():
            self.idle[i].set()
            while not self.on.wait(0.1):
                if self.stop.is_set():
                    return False
            self.idle[i].clear()
        return not self.stop.is_set()

    def pause(self):
        self.on.clear()
        for e in self.idle:
            e.wait(15)

    def resume(self):
        for e in self.idle:
            e.clear()
        self.on.set()

    def shutdown(self):
        self.stop.set()
        self.on.set()
        for t in self.threads:
            t.join(15)

    def aborter(self):
        modes = [m for m in self.aborts if m != "error_answer"]
        i = 0
        while self.gate(0):
            mode = modes[i % len(modes)]
            # every 3rd one streams a hot prompt: an abort of a cache replay or
            # of a coalesced follower; the others a unique one (a live stream)
            prompt = "soak hot stream %d" % (i % 50) if i % 3 == 0 else "soak abort %d %d" % (os.getpid(), i)
            body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                               "messages": [{"role": "user", "content": prompt}]}).encode()
            req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                   b"Authorization: Bearer sk-soak-%s\r\nContent-Length: %d\r\n\r\n"
                   % (b"b" if i % 3 == 0 else b"a", len(body)))
            i += 1
            s = None
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                if mode == "half_body":
                    s.sendall(req + body[:len(body) // 2])
                    time.sleep(0.001)
                else:
                    s.sendall(req + body)
                if mode in ("after_head", "mid_stream", "mid_stream_rst"):
                    buf = b""
                    while b"\r\n\r\n" not in buf:
                        got = s.recv(65536)
                        if not got:
                            raise ConnectionError("closed before the head")
                        buf += got
                    if not buf.startswith(b"HTTP/1.1 200"):
                        # an error answer (an injected upstream 500, the breaker):
                        # nothing left to leave in the middle of
                        self.aborts["error_answer"] += 1
                        continue
                    while mode != "after_head" and b"data:" not in buf:
                        got = s.recv(65536)
                        if not got:
                            break
                        buf += got
                if mode == "mid_stream_rst":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.aborts[mode] += 1
            except OSError as e:
                self.abort_errors += 1
                self.abort_error_kinds["%s: %s" % (mode, type(e).__name__)] = \
                    self.abort_error_kinds.get("%s: %s" % (mode, type(e).__name__), 0) + 1
            finally:
                if s:
                    s.close()
            time.sleep(self.abort_interval)

    def faulter(self):
        while self.gate(1):
            try:
                http("POST", self.mock_url + "/_mock/config", {"fail_next": FAULT_BURST}, timeout=5)
                self.faults += FAULT_BURST
            except OSError:
                pass
            time.sleep(FAULT_EVERY_S)


# ---- wrk --------------------------------------------------------------------------------

def run_wrk(url, secs, nonce):
    cmd = ["wrk", "-t1", "-c%d" % CONNS, "-d%ds" % secs, "--timeout", "10s",
           "-s", os.path.join(ROOT, "bench", "soak.lua"), url, "--", nonce]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(p)
    out, _ = p.communicate(timeout=secs + 60)
    procs.remove(p)
    m = re.search(r"^SOAK_JSON (\{.*\})$", out, re.M)
    if not m:
        raise SystemExit("soak: wrk gave no SOAK_JSON line:\n" + out)
    return json.loads(m.group(1))


def fmt_kinds(k):
    return ", ".join("%s %d" % kv for kv in sorted(k.items()))


def add_counts(dst, src):
    for k, v in src.items():
        dst[k] = dst.get(k, 0) + v


# ---- the soak ---------------------------------------------------------------------------

def main():
    global tmpdir
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIMEOUT)
    need("wrk", "bash third_party/install.sh third_party/bench-packages.txt")
    need("redis-server", "make deps")
    nofile = raise_nofile()
    tmpdir = tempfile.mkdtemp(prefix="sluice-soak-")
    sluice_bin, mock_bin = binaries()

    redis_port, mock_port, port, dead_port = free_port(), free_port(), free_port(), free_port()
    redis = spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", tmpdir], "redis")
    wait_port(redis_port, redis, "redis-server")
    mock = spawn([mock_bin, "--listen", "127.0.0.1:%d" % mock_port], "mock")
    wait_port(mock_port, mock, "sluice-mock")
    mock_url = "http://127.0.0.1:%d" % mock_port
    # streams drip 5 chunks 2 ms apart: long enough to be left in the middle
    http("POST", mock_url + "/_mock/config", {"stream_chunks": 5, "chunk_delay_ms": 2})
    conf = os.path.join(tmpdir, "sluice.yaml")
    with open(conf, "w") as f:
        f.write(sluice_config(port, mock_port, redis_port, dead_port))
    chk = subprocess.run([sluice_bin, "-t", "-c", conf], cwd=ROOT, capture_output=True, text=True)
    if chk.returncode != 0:
        raise SystemExit("soak: the generated config is refused:\n%s%s" % (chk.stdout, chk.stderr))
    sl = spawn([sluice_bin, "-c", conf], "sluice", cwd=ROOT)
    wait_port(port, sl, "sluice")
    base = "http://127.0.0.1:%d" % port
    url = base + "/v1/chat/completions"
    log("redis :%d, mock :%d, sluice :%d (pid %d), nofile %d, tmp %s"
        % (redis_port, mock_port, port, sl.pid, nofile, tmpdir))

    # a few SLA tickets: their keys are the ones allowed to live without a TTL
    now = datetime.datetime.now(datetime.timezone.utc)
    iso = lambda m: (now - datetime.timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    tickets = [{"id": "soak-%d" % i, "subject": "soak ticket %d" % i, "priority": "critical",
                "customer_tier": "enterprise", "status": "open", "created_at": iso(i * 7),
                "updated_at": iso(i * 7)} for i in range(20)]
    st, body = http("POST", base + "/sla/tickets", {"tickets": tickets}, {"Authorization": "Bearer sk-soak-a"})
    if st != 200:
        log("SLA ingest answered %d: %s (continuing)" % (st, body[:200]))

    ports = {port: "clients", mock_port: "mock", redis_port: "redis", dead_port: "dead"}
    bg = Background(port, mock_url)
    done, runs, elapsed = 0, 0, 0.0
    statuses, caches, errors = {}, {}, {}
    warm = None
    rate = None
    try:
        bg.resume()
        while done < N:
            if rate is None:
                secs = 2 if N >= 200000 else 1  # calibration
            else:
                target = WARM_AT if warm is None else min(N, done + max(N * 0.1, 1))
                secs = max(1, int(round((target - done) / rate)))
                secs = min(secs, 60)
            r = run_wrk(url, secs, "%d-%d" % (os.getpid(), runs))
            runs += 1
            done += r["requests"]
            elapsed += r["duration_us"] / 1e6
            add_counts(statuses, r["statuses"])
            add_counts(caches, r["cache"])
            add_counts(errors, {k[4:]: r[k] for k in r if k.startswith("err_") and r[k]})
            if r["requests"] == 0:
                raise SystemExit("soak: a wrk run made no request: %r" % r)
            rate = done / elapsed
            if runs == 1:
                # spread the aborts over the expected duration
                bg.abort_interval = max(0.0005, min(0.05, (N / rate) / ABORTS - 0.002))
            if sl.poll() is not None:
                raise SystemExit("soak: sluice died (exit %s) during the load" % sl.returncode)
            log("run %d: %d requests in %.1f s (total %d of %d, %.0f req/s, %d aborts; sluice RSS %d KiB, %d fds)"
                % (runs, r["requests"], r["duration_us"] / 1e6, done, N, rate, bg.total_aborts(),
                   rss_kib(sl.pid), fds(sl.pid)))
            if warm is None and done >= WARM_AT:
                bg.pause()
                time.sleep(SETTLE_S)
                warm = measure(sl.pid, ports)
                warm["at"] = done
                log("warm-up point at %d requests: RSS %d KiB, %d fds" % (done, warm["rss"], warm["fds"]))
                bg.resume()
        bg.pause()
        time.sleep(SETTLE_S)
        alive = sl.poll() is None
        end = measure(sl.pid, ports) if alive else None
        try:
            health = http("GET", base + "/health", timeout=5)[0]
        except OSError as e:
            health = "%s" % e
    finally:
        bg.shutdown()
    signal.alarm(TIMEOUT)  # the audit and report get a fresh budget
    total_keys, ticket_keys, no_ttl, kinds = redis_ttl_audit(redis_port)
    mstats = json.loads(http("GET", mock_url + "/_mock/stats")[1])

    # ---- verdict and report
    checks = []
    if alive:
        growth = (end["rss"] - warm["rss"]) / warm["rss"]
        checks.append(("RSS growth warm -> end < 1 %% (%+.2f %%)" % (growth * 100), growth < RSS_MAX_GROWTH))
        # Idle keep-alive connections to the provider are pooled by design (curl
        # multi, CURLMOPT_MAXCONNECTS): their number follows the recent peak of
        # concurrent upstream calls, not a leak. They must stay under that peak;
        # every other fd must be flat.
        pool_w, pool_e = warm["fd_kinds"].get("to mock", 0), end["fd_kinds"].get("to mock", 0)
        rest_w, rest_e = warm["fds"] - pool_w, end["fds"] - pool_e
        checks.append(("open fds flat (warm %d, end %d; without the idle upstream pool %d -> %d, +-%d)"
                       % (warm["fds"], end["fds"], rest_w, rest_e, FD_SLACK),
                       abs(end["fds"] - warm["fds"]) <= FD_SLACK or abs(rest_e - rest_w) <= FD_SLACK))
        checks.append(("idle upstream pool bounded by the concurrency (%d -> %d, <= %d)"
                       % (pool_w, pool_e, POOL_MAX), pool_e <= POOL_MAX))
    checks.append(("sluice alive", alive))
    checks.append(("/health answers 200 (%s)" % health, health == 200))
    checks.append(("every Redis key but tickets has a TTL (%d without)" % len(no_ttl), not no_ttl))
    ok = all(c for _, c in checks)

    if os.environ.get("SLUICE_BIN"):
        rev = "%s (%s)" % (os.environ.get("SOAK_COMMIT", "?"), os.environ["SLUICE_BIN"])
    else:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip() or "unknown"
        # the Makefile builds every src/**/*.c: untracked files count too
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "include", "Makefile"],
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            rev += " (+ uncommitted changes in src/ or include/)"
    aborts = bg.total_aborts()
    lines = ["## soak — commit %s — %s UTC" % (rev, time.strftime("%Y-%m-%d %H:%M", time.gmtime())), ""]
    lines.append("- requests: %d by wrk (%d runs, %d connections) + %d client aborts = %d; %.0f req/s over %.0f s"
                 % (done, runs, CONNS, aborts, done + aborts, rate, elapsed))
    lines.append("- statuses: " + ", ".join("%s %d" % (k, v) for k, v in sorted(statuses.items())))
    lines.append("- x-sluice-cache: " + ", ".join("%s %d" % (k, v) for k, v in sorted(caches.items())))
    lines.append("- aborts: " + ", ".join("%s %d" % (k, v) for k, v in bg.aborts.items()) +
                 ("; failed: %s" % bg.abort_error_kinds if bg.abort_errors else ""))
    lines.append("- upstream: %d mock calls, %d injected 500s, %d disconnects seen by the mock; dead provider for gpt-dead"
                 % (mstats.get("requests", 0), bg.faults, mstats.get("disconnects", 0)))
    if errors:
        lines.append("- wrk socket errors: " + ", ".join("%s %d" % kv for kv in sorted(errors.items())))
    if alive:
        lines.append("- RSS: %.1f MiB at warm-up (%d requests) -> %.1f MiB at the end (%+.2f %%)"
                     % (warm["rss"] / 1024, warm["at"], end["rss"] / 1024,
                        (end["rss"] - warm["rss"]) * 100.0 / warm["rss"]))
        lines.append("- fds: %d at warm-up -> %d at the end (%s -> %s)"
                     % (warm["fds"], end["fds"], fmt_kinds(warm["fd_kinds"]), fmt_kinds(end["fd_kinds"])))
    lines.append("- Redis: %d keys, %d SLA ticket keys, %d without a TTL%s"
                 % (total_keys, ticket_keys, len(no_ttl),
                    (": " + ", ".join(k.decode(errors="replace") for k in no_ttl[:10])) if no_ttl else ""))
    lines.append("- key kinds: " + ", ".join("%s %d" % kv for kv in sorted(kinds.items(), key=lambda x: -x[1])[:8]))
    lines.append("")
    for name, c in checks:
        lines.append("- %s: %s" % (name, "PASS" if c else "FAIL"))
    lines.append("- **soak: %s**" % ("PASS" if ok else "FAIL"))
    text = "\n".join(lines) + "\n"
    if not alive:
        with open(os.path.join(tmpdir, "sluice.log"), "rb") as f:
            log("sluice output (tail):\n" + f.read()[-3000:].decode(errors="replace"))
    print(text)
    if RESULTS != "-":
        with open(RESULTS, "a") as f:
            f.write("\n" + text)
    return 0 if ok else 1


if __name__ == "__main__":
    rc = 1
    try:
        rc = main()
    except Watchdog as e:
        log(str(e))
    except KeyboardInterrupt as e:
        log("interrupted (%s)" % (e or "SIGINT"))
        rc = 130
    finally:
        signal.alarm(0)
        cleanup()
    sys.exit(rc)
