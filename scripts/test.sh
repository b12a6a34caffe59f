#!/usr/bin/env bash
# `make test`: a private Incus daemon with test containers, a build, `swift test`, and the
# daemon stopped again whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh

export INCUS_DIR=${FERRY_TEST_INCUS_DIR:-/tmp/ferry-test-incus}
scripts/incus-env.sh stop "$INCUS_DIR" 2>/dev/null || true
rm -rf "$INCUS_DIR"
trap 'scripts/incus-env.sh stop "$INCUS_DIR" || true' EXIT
scripts/incus-env.sh start "$INCUS_DIR" c1 c2

# A short fuzz of the request parsers first: a crash there is a one-request outage.
scripts/fuzz.sh "${FERRY_TEST_FUZZ_SECONDS:-10}"

swift build --build-tests
export FERRY_BIN="$root/.build/debug/ferry"
export FERRY_INCUS_ENV="$root/scripts/incus-env.sh"

# docs/openapi.yaml against live Ferrys, every schemathesis check (about a minute).
scripts/schemathesis.sh "$FERRY_BIN"
swift test --skip-build --disable-swift-testing "$@"
