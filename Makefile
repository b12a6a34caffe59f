# Ferry: see README.md. Every target installs what it needs on Debian 12.
SWIFT_FORMAT_PATHS = Package.swift Sources Tests

.PHONY: all build run test lint format deps clean bench

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

clean:
	rm -rf .build .run

bench: deps
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	swift build -c release --product ferry
	python3 bench/run.py
