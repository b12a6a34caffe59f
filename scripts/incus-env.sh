#!/usr/bin/env bash
# A private Incus daemon for Ferry's tests, benchmarks and `make run`.
#
#   scripts/incus-env.sh install                 install Incus (bookworm-backports) and busybox
#   scripts/incus-env.sh start DIR NAME...       start a daemon in DIR and launch containers NAME...
#   scripts/incus-env.sh daemon-stop DIR         stop only the daemon (containers keep running)
#   scripts/incus-env.sh daemon-start DIR        start the daemon again on the same state
#   scripts/incus-env.sh stop DIR                delete the containers, stop the daemon
#   scripts/incus-env.sh add-remote DIR NAME     trust this client on DIR's daemon (started with
#                                                FERRY_INCUS_HTTPS=HOST:PORT) and add it as remote
#                                                NAME to the client config in $INCUS_CONF
#
# Every `incus` call for DIR needs INCUS_DIR=DIR in its environment.
set -euo pipefail

INCUSD=/usr/libexec/incus/incusd
IMAGE_ALIAS=ferry-busybox

log() { printf 'incus-env: %s\n' "$*" >&2; }

install_packages() {
  export DEBIAN_FRONTEND=noninteractive
  if ! command -v incus >/dev/null 2>&1 || [ ! -x "$INCUSD" ]; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      log "adding the bookworm-backports suite"
      cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    apt-get update -qq
    apt-get install -y -qq -t bookworm-backports --no-install-recommends incus-base >/dev/null
  fi
  if [ ! -x /bin/busybox ]; then
    apt-get install -y -qq --no-install-recommends busybox-static >/dev/null
  fi
}

daemon_running() {
  local dir=$1
  [ -f "$dir/ferry-incusd.pid" ] && kill -0 "$(cat "$dir/ferry-incusd.pid")" 2>/dev/null
}

daemon_start() {
  local dir=$1
  mkdir -p "$dir"
  export INCUS_DIR=$dir
  if daemon_running "$dir"; then
    return 0
  fi
  setsid "$INCUSD" --group root --logfile "$dir/incusd.log" </dev/null >>"$dir/incusd.out" 2>&1 &
  echo $! >"$dir/ferry-incusd.pid"
  if ! "$INCUSD" waitready --timeout=60; then
    log "the daemon did not become ready; its log:"
    tail -n 30 "$dir/incusd.log" >&2 || true
    exit 1
  fi
}

daemon_stop() {
  local dir=$1
  if daemon_running "$dir"; then
    local pid
    pid=$(cat "$dir/ferry-incusd.pid")
    kill "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/ferry-incusd.pid"
}

build_image() {
  local work
  work=$(mktemp -d)
  local root=$work/rootfs
  mkdir -p "$root"/{bin,sbin,etc,tmp,root,proc,sys,dev,usr/bin,usr/sbin,var}
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  ln -sf ../bin/busybox "$root/sbin/init"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf '::sysinit:/bin/mount -t tmpfs tmpfs /run\n::respawn:/bin/sleep 2147483647\n' >"$root/etc/inittab"
  cat >"$work/metadata.yaml" <<META
architecture: x86_64
creation_date: $(date +%s)
properties:
  description: busybox for Ferry tests
  os: busybox
  release: static
META
  tar -C "$work" -czf "$work/meta.tar.gz" metadata.yaml
  tar -C "$root" -czf "$work/rootfs.tar.gz" .
  incus image import "$work/meta.tar.gz" "$work/rootfs.tar.gz" --alias "$IMAGE_ALIAS" >/dev/null
  rm -rf "$work"
}

initialise() {
  local dir=$1
  if ! incus storage show default >/dev/null 2>&1; then
    # FERRY_INCUS_HTTPS: the daemon listens on HTTPS there too (a remote for tests).
    incus admin init --preseed <<PRESEED
$([ -n "${FERRY_INCUS_HTTPS:-}" ] && printf 'config:\n  core.https_address: %s\n' "$FERRY_INCUS_HTTPS")
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
PRESEED
  fi
  if ! incus image show "$IMAGE_ALIAS" >/dev/null 2>&1; then
    build_image
  fi
}

launch() {
  local name=$1
  if ! incus info "$name" >/dev/null 2>&1; then
    incus launch "$IMAGE_ALIAS" "$name" >/dev/null
  elif ! incus info "$name" | grep -q 'Status: RUNNING'; then
    incus start "$name"
  fi
}

stop_all() {
  local dir=$1
  export INCUS_DIR=$dir
  if daemon_running "$dir"; then
    for name in $(incus list --format csv --columns n 2>/dev/null); do
      incus delete --force "$name" >/dev/null 2>&1 || true
    done
  fi
  daemon_stop "$dir"
}

command=${1:-}
case "$command" in
  install)
    install_packages
    ;;
  start)
    dir=$(realpath -m "$2"); shift 2
    install_packages
    daemon_start "$dir"
    initialise "$dir"
    for name in "$@"; do launch "$name"; done
    log "daemon ready in $dir with: $*"
    ;;
  daemon-start)
    daemon_start "$(realpath -m "$2")"
    ;;
  daemon-stop)
    daemon_stop "$(realpath -m "$2")"
    ;;
  stop)
    stop_all "$(realpath -m "$2")"
    ;;
  add-remote)
    dir=$(realpath -m "$2")
    name=$3
    : "${INCUS_CONF:?add-remote needs INCUS_CONF, the client config to add the remote to}"
    token=$(INCUS_DIR=$dir incus config trust add "ferry-$name-$(date +%s%N)" --quiet)
    incus remote remove "$name" >/dev/null 2>&1 || true
    incus remote add "$name" "$token" --accept-certificate >/dev/null
    log "remote $name added to $INCUS_CONF"
    ;;
  *)
    echo "usage: $0 install | start DIR NAME... | daemon-start DIR | daemon-stop DIR | stop DIR | add-remote DIR NAME" >&2
    exit 2
    ;;
esac
