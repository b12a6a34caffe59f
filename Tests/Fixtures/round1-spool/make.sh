#!/usr/bin/env bash
# How spool.tar.gz was made: by Ferry 0.6.0 (commit 9e72b02), the last release whose task
# records live in the spool itself (the `user.ferry.record` attribute of ID.data, or
# ID.json). It is kept, not rebuilt, so the adoption test always reads what that release
# wrote. Run from this folder with FERRY_BIN pointing at a build of 9e72b02.
#
# What it holds (tokens alice and bob, see tokens.yaml; fake-incus fails /srv/fail*,
# holds /srv/hold*, delivers the rest):
#   delivered:  /srv/done-1.txt, /srv/done-2.txt (Idempotency-Key alice-key-1)   ID.json
#   failed:     /srv/fail-1.txt (bob)                                            attribute
#   pushing:    /srv/hold-1.txt (alice), /srv/hold-2.txt (bob)                   attribute
#   queued:     /srv/queued-1.txt (alice-key-2), /srv/queued-2.txt (bob, bob-key-1),
#               a 3,859-byte destination (record too large for the attribute: ID.json),
#               /srv/queued-3.txt (empty body), in that order                    attribute
#   a partial:  /srv/partial.bin, killed mid-body (data file, no record)
set -euo pipefail
here=$(pwd)
spool=$(mktemp -d)/spool
A=alice-secret-token B=bob-secret-token
"$FERRY_BIN" --listen 127.0.0.1:18090 --spool "$spool" --incus "$here/fake-incus" \
  --tokens tokens.yaml --batch-max 1 --workers 2 >/dev/null 2>&1 &
pid=$!
sleep 1.5
up() { curl -s -o /dev/null -H "Authorization: Bearer $1" -H "X-Container-Name: $2" -H "X-File-Path: $3" "${@:5}" --data-binary "$4" http://127.0.0.1:18090/upload; }
up $A c1 /srv/done-1.txt "delivered one"
up $A c1 /srv/done-2.txt "delivered two" -H "Idempotency-Key: alice-key-1"
up $B c2 /srv/fail-1.txt "failed bob"
sleep 1
up $A c1 /srv/hold-1.txt "held, pushing"
up $B c2 /srv/hold-2.txt "held, pushing bob"
sleep 0.5
up $A c1 /srv/queued-1.txt "queued first" -H "Idempotency-Key: alice-key-2"
up $B c2 /srv/queued-2.txt "queued second, bob" -H "Idempotency-Key: bob-key-1"
long=/srv/$(python3 -c "print('/'.join(['dir-%06d' % i for i in range(349)]))")/queued-long.txt
up $A c1 "$long" "queued with a record too large for an attribute" -H "X-Create-Dirs: true"
up $A c1 /srv/queued-3.txt ""
head -c 200000 /dev/zero | curl -s -o /dev/null --limit-rate 20K -H "Authorization: Bearer $A" \
  -H "X-Container-Name: c1" -H "X-File-Path: /srv/partial.bin" --data-binary @- \
  http://127.0.0.1:18090/upload &
sleep 1.5
kill -9 $pid
pkill -9 -f "$here/fake-incus" || true
tar --xattrs --xattrs-include='user.*' --sort=name --owner=0 --group=0 --numeric-owner \
  -cf - -C "$spool" . | gzip -9 >spool.tar.gz
