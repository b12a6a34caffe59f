#!/usr/bin/env bash
# Installs what building and testing Ferry needs on Debian 12, skipping what is present.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)

# libsqlite3-dev: the task store. nginx-light: NginxTests run Ferry behind a real nginx
# with deploy/nginx/.
missing=()
for package in libevent-dev libsqlite3-dev pkg-config nginx-light; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  # Packages must not start their daemons (nginx on port 80): the tests start their own
  # on loopback and stop them. policy-rc.d answering 101 tells invoke-rc.d "not now".
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$here/incus-env.sh" install

# pip_install REQUIREMENT: pip, or with --break-system-packages where Debian's Python
# refuses (externally managed).
pip_install() {
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  fi
  local log
  if ! log=$(python3 -m pip install -q "$1" 2>&1); then
    if grep -q externally-managed-environment <<<"$log"; then
      python3 -m pip install -q --break-system-packages "$1"
    else
      echo "$log" >&2
      exit 1
    fi
  fi
}

# scripts/check-openapi.py checks docs/openapi.yaml with openapi-spec-validator (PyPI),
# pinned to one version.
openapi_validator=openapi-spec-validator==0.9.0
if ! python3 -c 'import openapi_spec_validator' 2>/dev/null; then
  echo "install-deps: installing $openapi_validator" >&2
  pip_install "$openapi_validator"
fi

# scripts/schemathesis.sh runs schemathesis (PyPI) against a live Ferry, pinned to one
# version: another could check differently.
schemathesis_version=4.32.5
if ! python3 -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$schemathesis_version')" 2>/dev/null; then
  echo "install-deps: installing schemathesis==$schemathesis_version" >&2
  pip_install "schemathesis==$schemathesis_version"
fi

# The tus tests upload with tuspy (PyPI), the Python tus client, pinned to one version.
tuspy_version=1.1.0
if ! python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('tuspy') != '$tuspy_version')" 2>/dev/null; then
  echo "install-deps: installing tuspy==$tuspy_version" >&2
  pip_install "tuspy==$tuspy_version"
fi

# --- Browser tests (Tests/Browser/test_console.py) ---------------------------------------
# The web console is tested in Debian's headless chromium through its chromedriver, driven
# by selenium (PyPI), pinned to one version.
browser_missing=()
for package in chromium chromium-driver; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || browser_missing+=("$package")
done
if [ ${#browser_missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${browser_missing[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${browser_missing[@]}" >/dev/null
fi
selenium_version=4.50.0
if ! python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('selenium') != '$selenium_version')" 2>/dev/null; then
  echo "install-deps: installing selenium==$selenium_version" >&2
  pip_install "selenium==$selenium_version"
fi
