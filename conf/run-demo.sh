#!/bin/sh
# `make run`: sluice in the foreground on conf/sluice.yaml. Without
# OPENAI_API_KEY it also starts the mock provider and points the default
# provider at it (demo mode).
cd "$(dirname "$0")/.." || exit 1
CONF=${SLUICE_CONF:-conf/sluice.yaml}
if [ -z "${OPENAI_API_KEY:-}" ]; then
    MOCK_ADDR=${SLUICE_MOCK_ADDR:-127.0.0.1:9099}
    ./build/sluice-mock --listen "$MOCK_ADDR" &
    MOCK_PID=$!
    trap 'kill $MOCK_PID 2>/dev/null' EXIT INT TERM
    export OPENAI_BASE_URL="http://$MOCK_ADDR/v1"
    echo "sluice: OPENAI_API_KEY is not set: demo mode, the provider is sluice-mock on $MOCK_ADDR" >&2
fi
./build/sluice -c "$CONF"
