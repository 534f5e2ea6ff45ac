# Convenience targets. `make demo` is the README's first command (from a fresh clone on a machine that has only
# Rust: it installs the Debian packages the build needs before cargo compiles anything); `make test` is the
# second, and what CI runs.
CARGO ?= cargo

.PHONY: deps build test lint demo doc fuzz

# The system packages (clang, libelf, libpcap, iproute2, ...): libbpf-sys cannot compile without them.
deps:
	bash deploy/install-deps.sh

build: deps
	$(CARGO) build --release

# The veth lab, HTTP on xdptcp in it, curl and wrk from the kernel side, report, teardown (as root).
demo: deps
	$(CARGO) run --release -- demo

# Every test: unit, property, simulator, examples and (as root) the AF_XDP veth-lab tests.
test: deps
	bash tests/run-all.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

doc:
	$(CARGO) doc --no-deps
