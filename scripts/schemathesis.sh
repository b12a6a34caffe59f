#!/usr/bin/env bash
# Schemathesis with every check against live Ferrys: docs/openapi.yaml must say exactly
# what the server answers. Three runs, each on a Ferry of its own (free port, temporary
# spool, `--incus /bin/true` so every push succeeds at once and no Incus is needed):
#   open     no --tokens
#   token    --tokens, with a token whose rule refuses setid modes, other owners and
#            bodies over 64 bytes (so 202 and 403 both occur)
#   no-token --tokens, without a token (401 everywhere it is asked)
# Settings (seed, examples, hooks): scripts/schemathesis.toml. Exits 1 on any failure and
# prints schemathesis's report and the end of that Ferry's log.
#
#   scripts/schemathesis.sh [FERRY_BINARY]     (default $FERRY_BIN, else .build/debug/ferry)
set -euo pipefail
cd "$(dirname "$0")/.."
ferry=${1:-${FERRY_BIN:-.build/debug/ferry}}
python3 -c 'import schemathesis' 2>/dev/null || { echo "schemathesis: not installed; run scripts/install-deps.sh" >&2; exit 1; }
[ -x "$ferry" ] || { echo "schemathesis: no ferry binary at $ferry; run swift build" >&2; exit 1; }

work=$(mktemp -d)
# Hypothesis keeps its files here instead of in the repository.
export HYPOTHESIS_STORAGE_DIRECTORY=$work/hypothesis
pids=()
stop() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap stop EXIT

# start NAME FERRY_ARGS...: starts a Ferry and sets $url and $log once it is ready.
start() {
  local name=$1 address=
  shift
  mkdir -p "$work/$name"
  "$ferry" --listen 127.0.0.1:0 --spool "$work/$name/spool" --incus /bin/true "$@" \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    if grep -q '\[FerryServer\] ready' "$work/$name.log"; then
      address=$(sed -n 's/.* address=\([0-9.]*:[0-9]*\) .*\[FerryServer\] listening$/\1/p' "$work/$name.log")
      break
    fi
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$address" ]; then
    echo "schemathesis: Ferry ($name) did not start:" >&2
    cat "$work/$name.log" >&2
    exit 1
  fi
  url=http://$address
  log=$work/$name.log
}

failed=()
# run NAME SCHEMATHESIS_ARGS...: one run against the Ferry started last.
run() {
  local name=$1 began=$SECONDS
  shift
  if timeout 300 python3 -m schemathesis.cli --config-file scripts/schemathesis.toml run docs/openapi.yaml \
    --url "$url" --no-color "$@" >"$work/$name.report" 2>&1; then
    echo "schemathesis $name: $(grep -E '^=+ .* in [0-9.]+s =+$' "$work/$name.report" | tr -d '=' | xargs)" \
      "($((SECONDS - began)) s)"
  else
    echo "schemathesis $name: FAILED" >&2
    cat "$work/$name.report" >&2
    echo "--- the end of Ferry's log" >&2
    tail -n 20 "$log" >&2
    failed+=("$name")
  fi
}

start open
run open

token=$(head -c 32 /dev/urandom | base64)
cat >"$work/tokens.yaml" <<POLICY
tokens:
  - name: schemathesis
    sha256: $(printf %s "$token" | sha256sum | cut -d' ' -f1)
    containers: ["*"]
    paths: ["/"]
    max_upload: 64
POLICY
start tokens --tokens "$work/tokens.yaml"
run token --header "Authorization: Bearer $token" --max-examples 25
run no-token --max-examples 10

if [ ${#failed[@]} -gt 0 ]; then
  echo "schemathesis: docs/openapi.yaml and the server disagree (${failed[*]}); see above" >&2
  exit 1
fi
