# Ferry: see README.md. Every target installs what it needs on Debian 12.
SWIFT_FORMAT_PATHS = Package.swift Sources Tests Plugins

.PHONY: all build run test lint format deps clean bench fuzz install

# `make install`: PREFIX and DESTDIR as usual; BINARY installs an already built ferry
# instead of building release.
PREFIX ?= /usr/local
DESTDIR ?=
BINARY ?=

all: build

deps:
	scripts/install-deps.sh

build: deps
	swift build -c release --product ferry

run:
	scripts/run.sh

test:
	scripts/test.sh

lint:
	swift format lint --strict -r $(SWIFT_FORMAT_PATHS)

format:
	swift format format -i -r $(SWIFT_FORMAT_PATHS)

install: $(if $(BINARY),,build)
	install -D -m 0755 $(or $(BINARY),.build/release/ferry) $(DESTDIR)$(PREFIX)/bin/ferry
	install -d -m 0755 $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/share/ferry/nginx
	sed 's|/usr/local/bin/ferry|$(PREFIX)/bin/ferry|g' deploy/systemd/ferry.service \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/ferry.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/ferry.service
	install -m 0644 deploy/systemd/ferry.default $(DESTDIR)$(PREFIX)/share/ferry/ferry.default
	install -m 0644 deploy/nginx/*.conf $(DESTDIR)$(PREFIX)/share/ferry/nginx/
	install -m 0644 docs/openapi.yaml $(DESTDIR)$(PREFIX)/share/ferry/openapi.yaml

clean:
	rm -rf .build .run

bench: deps
	command -v wrk >/dev/null && command -v go >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk golang-go libevent-dev)
	swift build -c release --product ferry
	python3 bench/run.py

# libFuzzer over the upload contract and the /tasks request parser (Tests/Fuzz), each for
# FUZZ_SECONDS; new inputs land in .build/fuzz-corpus/NAME, findings as crash-* files. ASan is
# left out: with the Swift runtime it hangs here. `make test` runs both for a few seconds.
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)
