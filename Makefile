# Ferry: see README.md. Every target installs what it needs on Debian 12.
SWIFT_FORMAT_PATHS = Package.swift Sources Tests

.PHONY: all build run test lint format deps clean bench fuzz

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

# libFuzzer over the upload contract (Tests/Fuzz), for FUZZ_SECONDS; new inputs land in
# .build/fuzz-corpus, findings as crash-* files. ASan is left out: with the Swift runtime it hangs here.
FUZZ_SECONDS ?= 60
fuzz:
	swiftc -sanitize=fuzzer -parse-as-library -O Tests/Fuzz/HeaderAdmissionFuzzer.swift \
		Sources/FerryCore/Contract/*.swift -o .build/fuzz-header-admission
	mkdir -p .build/fuzz-corpus
	timeout -s KILL $$(( $(FUZZ_SECONDS) + 30 )) .build/fuzz-header-admission \
		-max_total_time=$(FUZZ_SECONDS) -max_len=8192 .build/fuzz-corpus Tests/Fuzz/corpus/header-admission
