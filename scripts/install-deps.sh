#!/usr/bin/env bash
# Installs what building and testing Ferry needs on Debian 12, skipping what is present.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)

# nginx-light: NginxTests run Ferry behind a real nginx with deploy/nginx/.
missing=()
for package in libevent-dev pkg-config nginx-light; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$here/incus-env.sh" install
