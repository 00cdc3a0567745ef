"""Integration harness: real sluice, real sluice-mock, real redis-server on free
loopback ports. Stdlib only. Every process started here is stopped at exit."""
import atexit, http.client, json, os, random, signal, socket, subprocess, tempfile, time

import resp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SLUICE_BIN = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build/test/sluice"))
MOCK_BIN = os.environ.get("MOCK_BIN", os.path.join(ROOT, "build/sluice-mock"))
REDIS_BIN = os.environ.get("REDIS_BIN", "redis-server")
_procs = []
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_cleanup)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cluster_ports(n):
    """Free ports P with P + 10000 (the cluster bus) free too."""
    out = []
    while len(out) < n:
        p = random.randint(20000, 30000)
        ok = True
        for q in (p, p + 10000):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", q))
            except OSError:
                ok = False
            s.close()
        if ok and p not in out:
            out.append(p)
    return out


def wait_for(pred, timeout, what, every=0.05):
    """Polls pred() (an exception counts as not yet) until it is true; raises
    AssertionError naming what after timeout seconds."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(every)
    raise AssertionError("timed out waiting for " + what)


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("port %d never opened" % port)


def request(method, url, body=None, headers=None, timeout=10):
    """-> (status, headers with lowercase names, body bytes)"""
    assert url.startswith("http://")
    hostport, _, path = url[7:].partition("/")
    host, port = hostport.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, "/" + path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    hd = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hd, data


def post_json(url, body, headers=None, timeout=10):
    st, h, b = request("POST", url, body, headers, timeout)
    try:
        j = json.loads(b) if b else None
    except ValueError:
        j = None
    return st, h, j, b


def post_status_or_closed(url, body, headers=None):
    """Status of a POST the server may refuse (and close) before the body is
    fully sent: a 413 then reaches the client as a broken pipe."""
    try:
        return post_json(url, body, headers)[0]
    except (BrokenPipeError, ConnectionResetError):
        return "closed"


def sse_events(raw):
    """data: payloads of an SSE body, in order."""
    out = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data:"):
                out.append(line[5:].strip())
    return out


def stream(url, body, headers=None, timeout=10):
    st, h, raw = request("POST", url, body, headers, timeout)
    return st, h, sse_events(raw), raw


def send_raw(port, data, chunks=None, timeout=5):
    """Sends data (optionally in the given pieces) and reads until close or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for piece in (chunks or [data]):
        s.sendall(piece)
        if chunks:
            time.sleep(0.001)
    out = b""
    s.settimeout(timeout)
    try:
        while True:
            got = s.recv(65536)
            if not got:
                break
            out += got
            if _complete_http(out):
                break
    except socket.timeout:
        pass
    s.close()
    return out


def _complete_http(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
        if k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower():
            return body.endswith(b"0\r\n\r\n")
    return False


class Mock:
    def __init__(self):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen([MOCK_BIN, "--listen", "127.0.0.1:%d" % self.port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _procs.append(self.proc)
        wait_port(self.port)

    def config(self, **kw):
        return post_json(self.url + "/_mock/config", kw)[2]

    def reset(self):
        return post_json(self.url + "/_mock/reset", {})[2]

    def stats(self):
        return json.loads(request("GET", self.url + "/_mock/stats")[2])

    def last(self):
        return json.loads(request("GET", self.url + "/_mock/last")[2])

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Redis:
    def __init__(self, port=None, extra=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="sluice-redis-")
        self.extra = extra or []
        self.start()

    def start(self):
        self.proc = subprocess.Popen([REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir] + self.extra,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _procs.append(self.proc)
        wait_port(self.port)

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def cmd(self, *args):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=3)
        s.sendall(resp.encode(*args))
        r = resp.read(s.makefile("rb"))
        s.close()
        return r

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop_signal(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def cont_signal(self):
        os.kill(self.proc.pid, signal.SIGCONT)


def yaml_dump(v, indent=0):
    """A tiny YAML writer for test configs (dicts, lists, scalars)."""
    pad = "  " * indent
    out = []
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                out.append("%s%s:" % (pad, k))
                out.append(yaml_dump(x, indent + 1))
            else:
                out.append("%s%s: %s" % (pad, k, _scalar(x)))
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, dict):
                first = True
                for k, y in x.items():
                    lead = pad + ("- " if first else "  ")
                    first = False
                    if isinstance(y, (dict, list)) and y:
                        out.append("%s%s:" % (lead, k))
                        out.append(yaml_dump(y, indent + 2))
                    else:
                        out.append("%s%s: %s" % (lead, k, _scalar(y)))
            else:
                out.append("%s- %s" % (pad, _scalar(x)))
    return "\n".join(out)


def _scalar(x):
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, list):
        return "[]"
    if isinstance(x, dict):
        return "{}"
    return json.dumps(str(x))


class Sluice:
    def __init__(self, config, env=None, wait=True, max_fds=None):
        self.dir = tempfile.mkdtemp(prefix="sluice-test-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.access_path = os.path.join(self.dir, "access.log")
        self.conf_path = os.path.join(self.dir, "sluice.yaml")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.write_config(config)
        e = dict(os.environ)
        e.update(env or {})
        self.err = open(self.stderr_path, "wb")
        def limit():
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))
        self.proc = subprocess.Popen([SLUICE_BIN, "-c", self.conf_path], stdout=subprocess.DEVNULL,
                                     stderr=self.err, env=e, preexec_fn=limit if max_fds else None)
        _procs.append(self.proc)
        if wait:
            wait_port(self.port)

    def write_config(self, config):
        if isinstance(config, dict):
            c = dict(config)
            c.setdefault("listen", "127.0.0.1:%d" % self.port)
            c.setdefault("log", {"access": self.access_path})
            text = yaml_dump(c)
        else:
            text = config
        with open(self.conf_path, "w") as f:
            f.write(text + "\n")

    def access_log(self):
        try:
            with open(self.access_path) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def wait_log(self, n, timeout=3):
        end = time.time() + timeout
        while time.time() < end:
            lines = self.access_log()
            if len(lines) >= n:
                return lines
            time.sleep(0.02)
        return self.access_log()

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, timeout=15):
        """SIGTERM; asserts a clean exit (0) and no sanitizer report."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("sluice did not exit on SIGTERM")
        self.err.close()
        err = self.stderr()
        for mark in SANITIZER_MARKS:
            assert mark not in err, "sanitizer report in sluice stderr:\n" + err[err.find(mark) - 200:][:6000]
        assert rc == 0, "sluice exited %s:\n%s" % (rc, err[-2000:])


def base_config(mock, **over):
    c = {
        "providers": [{"name": "mock", "kind": "openai", "base_url": mock.url + "/v1",
                       "api_key": "sk-upstream-secret", "models": ["*"]}],
        "timeouts": {"connect_ms": 500, "first_byte_ms": 2000, "total_ms": 5000, "idle_ms": 1000},
        "shutdown": {"drain_s": 5},
        "cache": {"enabled": False},
        "prices": {"gpt-4o-mini": {"input": 0.15, "output": 0.60}},
    }
    c.update(over)
    return c


def chat(content="hello", model="gpt-4o-mini", **kw):
    b = {"model": model, "messages": [{"role": "user", "content": content}]}
    b.update(kw)
    return b
