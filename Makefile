# exwatch: the README's two commands are `make demo` and `make test`.
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO ?= pcaps/demo-exchange-day.pcap
BIN := target/release/exwatch

.PHONY: deps build demo test lint bench bench-throughput fuzz golden check-signatures record

# libpcap is the one system library exwatch links; install it when pkg-config cannot find it.
deps:
	@if ! (command -v pkg-config >/dev/null && pkg-config --exists libpcap); then \
		echo "libpcap not found: installing libpcap-dev and pkg-config with apt-get"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends libpcap-dev pkg-config; \
	fi

build: deps
	$(CARGO) build --release

demo: build
	$(BIN) audit --json demo-records.ndjson $(DEMO)
	@echo
	@echo "records written to demo-records.ndjson ($$(wc -l < demo-records.ndjson) flows)"

test: deps check-signatures
	$(CARGO) test --release --all-targets

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

check-signatures:
	python3 signatures/check.py ../shared/exchange-ports.md

# Regenerate tests/golden/ after a deliberate change in classification (see tests/golden/README.md).
golden: build
	EXWATCH_BLESS=1 $(CARGO) test --release --test golden

bench: deps
	$(CARGO) bench --bench pipeline

bench-throughput: build
	python3 benches/throughput.py

fuzz:
	@echo "see fuzz/README.md: cargo +nightly fuzz run <target>"

# Re-record pcaps/ from real peers (root, Debian 12; see pcaps/README.md). Then `make golden`.
record:
	$(SUDO) bash pcaps/record/all.sh
