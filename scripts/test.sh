#!/usr/bin/env bash
# `make test`: a private Incus daemon with test containers, a build, `swift test`, and the
# daemon stopped again whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh

export INCUS_DIR=${FERRY_TEST_INCUS_DIR:-/tmp/ferry-test-incus}
# A second private daemon, listening on HTTPS on a loopback port: the remote r2 (with
# instance c3) of RemoteDeliveryTests, added to a private client config (INCUS_CONF), which
# every Ferry the tests start uses.
export FERRY_TEST_REMOTE_DIR=$INCUS_DIR-r2
export INCUS_CONF=$INCUS_DIR-client
for dir in "$INCUS_DIR" "$FERRY_TEST_REMOTE_DIR"; do
  scripts/incus-env.sh stop "$dir" 2>/dev/null || true
  rm -rf "$dir"
done
rm -rf "$INCUS_CONF"
trap 'scripts/incus-env.sh stop "$INCUS_DIR" || true; scripts/incus-env.sh stop "$FERRY_TEST_REMOTE_DIR" || true' EXIT
scripts/incus-env.sh start "$INCUS_DIR" c1 c2
https_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
FERRY_INCUS_HTTPS=127.0.0.1:$https_port scripts/incus-env.sh start "$FERRY_TEST_REMOTE_DIR" c3
scripts/incus-env.sh add-remote "$FERRY_TEST_REMOTE_DIR" r2

# A short fuzz of the request parsers first: a crash there is a one-request outage.
scripts/fuzz.sh "${FERRY_TEST_FUZZ_SECONDS:-10}"

swift build --build-tests
export FERRY_BIN="$root/.build/debug/ferry"
export FERRY_INCUS_ENV="$root/scripts/incus-env.sh"

# docs/openapi.yaml against live Ferrys, every schemathesis check (about a minute).
scripts/schemathesis.sh "$FERRY_BIN"
swift test --skip-build --disable-swift-testing "$@"

# The web console in a real headless Chromium (Debian's chromium and chromium-driver,
# selenium from PyPI) against real Ferrys and the private Incus.
python3 Tests/Browser/test_console.py
