#!/usr/bin/env bash
# `make fuzz` (and a short run in `make test`): builds each libFuzzer target in Tests/Fuzz with
# the sources it exercises and runs it for SECONDS over its corpus. Exits non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
mkdir -p .build

fuzz() {
  local name=$1 harness=$2
  shift 2
  swiftc -sanitize=fuzzer -parse-as-library -O "$harness" "$@" -o ".build/fuzz-$name"
  mkdir -p ".build/fuzz-corpus/$name"
  # Findings (crash-*) are written to the working directory: keep them out of the tree's root.
  (cd .build && timeout -s KILL $((seconds + 30)) "./fuzz-$name" -max_total_time="$seconds" -max_len=8192 \
    "fuzz-corpus/$name" "../Tests/Fuzz/corpus/$name")
}

fuzz header-admission Tests/Fuzz/HeaderAdmissionFuzzer.swift Sources/FerryCore/Contract/*.swift
fuzz task-request Tests/Fuzz/TaskRequestFuzzer.swift Sources/FerryServer/Routes/TaskRequest.swift
