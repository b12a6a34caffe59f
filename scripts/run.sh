#!/usr/bin/env bash
# `make run`: Ferry on 127.0.0.1:8080 with a working default. Uses the Incus daemon that
# answers; when none does, starts a private one with a container `demo`. Ctrl-C stops what
# this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh
swift build -c release --product ferry

started_incus=
if [ -z "${INCUS_DIR:-}" ] && incus info >/dev/null 2>&1; then
  echo "run: using the Incus daemon that answers" >&2
else
  export INCUS_DIR=${INCUS_DIR:-$root/.run/incus}
  scripts/incus-env.sh start "$INCUS_DIR" demo
  started_incus=$INCUS_DIR
fi
stop() {
  [ -n "${ferry_pid:-}" ] && kill "$ferry_pid" 2>/dev/null && wait "$ferry_pid" 2>/dev/null || true
  [ -n "$started_incus" ] && scripts/incus-env.sh stop "$started_incus" || true
}
trap stop EXIT INT TERM

listen=${FERRY_LISTEN:-127.0.0.1:8080}
cat <<HELP

Ferry is starting on http://$listen - try:

  echo hello > /tmp/hello.txt
  curl -i -X POST --data-binary @/tmp/hello.txt \\
       -H 'X-Container-Name: demo' -H 'X-File-Path: /root/' -H 'X-Host-Path: /tmp/hello.txt' \\
       http://$listen/upload
  INCUS_DIR=${INCUS_DIR:-} incus file pull demo/root/hello.txt -

or open the web console at http://$listen/ui/ (upload from the browser, watch the queue).

Ctrl-C stops Ferry${started_incus:+ and the private Incus daemon}.

HELP
.build/release/ferry --listen "$listen" --spool "$root/.run/spool" "$@" &
ferry_pid=$!
wait "$ferry_pid"
