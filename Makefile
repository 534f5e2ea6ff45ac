# Convenience targets; `make test` is the README's test command and what CI runs.
CARGO ?= cargo

.PHONY: build test lint demo fuzz

build:
	$(CARGO) build --release

# Every test: unit, property, simulator and (as root) the AF_XDP veth-lab tests.
test:
	bash tests/run-all.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

demo: build
	./target/release/xdptcp demo
