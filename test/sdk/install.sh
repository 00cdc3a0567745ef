#!/bin/sh
# Installs the official client libraries of test/package.json (openai,
# @anthropic-ai/sdk, the Vercel AI SDK, LangChain JS, the OpenAI Agents SDK,
# @opentelemetry/otlp-transformer for test_tracing's receiver) into
# test/node_modules from the npm registry, exactly as package-lock.json
# pins them. Quiet and quick when they are already there.
# On failure it says why and exits 1; test/integration/test_sdk.py then FAILS
# (never skips) with the same reason, kept in build/test/sdk-install.log.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)   # test/
log="$here/../build/test/sdk-install.log"
mkdir -p "$(dirname "$log")"
fail() { echo "test/sdk: $*" | tee "$log" >&2; exit 1; }
command -v node >/dev/null 2>&1 || fail "node is not installed (Debian package nodejs, Node.js 20 or newer)"
command -v npm >/dev/null 2>&1 || fail "npm is not installed (it comes with Node.js; on Debian: the npm package)"
cd "$here" || fail "cannot enter $here"
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] &&
   [ -f node_modules/openai/package.json ] && [ -f node_modules/@anthropic-ai/sdk/package.json ] &&
   [ -f node_modules/@opentelemetry/otlp-transformer/package.json ] &&
   [ -f node_modules/ai/package.json ] && [ -f node_modules/@langchain/openai/package.json ] &&
   [ -f node_modules/@openai/agents/package.json ]; then
    rm -f "$log"
    exit 0
fi
echo "test/sdk: installing the client libraries (npm ci) into test/node_modules" >&2
# openai 7.x, ai 7.x, @ai-sdk/* 4.x and @langchain/openai 1.x declare engines
# node >= 22; they run on the Node.js 20 of Debian 12 machines here
# (test_sdk*.py prove it each run), so the declaration is not enforced.
if ! npm ci --no-audit --no-fund --engine-strict=false --loglevel=error > "$log.npm" 2>&1; then
    fail "npm ci failed (no network, or the npm registry refused): $(grep -m4 'npm error' "$log.npm" | tr '\n' ' ')"
fi
rm -f "$log" "$log.npm"
