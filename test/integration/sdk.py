"""Runs the official client libraries (test/sdk/*.mjs on Node.js) against a
server and returns what they printed. A library that is not installed is a
test FAILURE naming the reason, never a skip (issue 16)."""
import json, os, shutil, subprocess

from harness import ROOT

TEST_DIR = os.path.join(ROOT, "test")
SDK_DIR = os.path.join(TEST_DIR, "sdk")
# package -> major version wanted. otlp-transformer 0.57 is the last line that
# ships the protobufjs decoders generated from the official OTLP protos
# (test/sdk/otlp_receiver.mjs decodes sluice's exports with them).
PACKAGES = {"openai": 7, "@anthropic-ai/sdk": 1, "@opentelemetry/otlp-transformer": 0,
            "ai": 7, "@ai-sdk/openai": 4, "@ai-sdk/anthropic": 4,  # the Vercel AI SDK 7
            "@langchain/core": 1, "@langchain/openai": 1, "@langchain/anthropic": 1,
            "@openai/agents": 0, "zod": 4}
_installed = {}
_failed = []


def installed():
    """{package: version}; installs them (test/sdk/install.sh) once if missing,
    raises AssertionError saying why they cannot be used."""
    if _installed:
        return _installed
    if not shutil.which("node"):
        raise AssertionError("the SDK tests need Node.js: `node` is not on PATH (Debian: nodejs)")
    def versions():
        out = {}
        for pkg in PACKAGES:
            try:
                with open(os.path.join(TEST_DIR, "node_modules", pkg, "package.json")) as f:
                    out[pkg] = json.load(f)["version"]
            except (OSError, ValueError, KeyError):
                pass
        return out
    have = versions()
    if len(have) < len(PACKAGES) and not _failed:
        r = subprocess.run([os.path.join(SDK_DIR, "install.sh")], capture_output=True, text=True, timeout=300)
        have = versions()
        if len(have) < len(PACKAGES):
            why = [l for l in (r.stderr + r.stdout).splitlines() if "failed" in l or "not installed" in l]
            _failed.append("the official client libraries (test/package.json) could not be installed "
                           "from the npm registry by test/sdk/install.sh: " +
                           (why[-1] if why else (r.stderr or r.stdout).strip()[-600:]))
    if _failed:
        raise AssertionError(_failed[0])  # tried once per run: every SDK test fails with it
    for pkg, major in PACKAGES.items():
        got = int(have[pkg].split(".")[0])
        assert got == major, "%s %s installed, the tests are written for %d.x" % (pkg, have[pkg], major)
    _installed.update(have)
    return _installed


def run(lib, case, base_url, key="sk-none", env=None, expect_ok=True, timeout=60):
    """node test/sdk/<lib>.mjs <case> -> the JSON it printed. lib: openai | anthropic | vercel | langchain | agents."""
    installed()
    e = dict(os.environ, SLUICE_BASE_URL=base_url, SLUICE_KEY=key)
    e.update(env or {})
    p = subprocess.run(["node", os.path.join(SDK_DIR, lib + ".mjs"), case], capture_output=True,
                       text=True, env=e, cwd=TEST_DIR, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "%s %s printed no JSON (exit %d):\n%s\n%s" % (lib, case, p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    out = json.loads(lines[-1])
    if expect_ok:
        assert p.returncode == 0 and "error" not in out, "%s %s failed (exit %d): %s\n%s" % (
            lib, case, p.returncode, out, p.stderr[-1500:])
    return out
